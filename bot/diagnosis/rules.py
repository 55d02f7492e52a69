"""The classifier's rule table: (category, pattern, weight), most specific signals weighted most.

Patterns run over the log's message lines, with paths masked (a folder or branch named
`oom-test` is a name, not a signal; see paths.py), and over every parsed exception
(`Type: message`). Rules with `when` see exceptions only, and check the traceback too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.diagnosis.config_keys import NOT_IN_CONFIG
from bot.diagnosis.tracebacks import ParsedTraceback, is_library_file

RETRYABLE_BY_DEFAULT = {"infra"}


@dataclass(frozen=True)
class Rule:
    category: str
    pattern: re.Pattern
    weight: float
    retryable: bool | None = None  # None: the category's default
    # Extra check against the traceback whose exception matched; such rules only see exceptions.
    when: Callable[[re.Match, ParsedTraceback], bool] | None = None
    # A launcher's wrapper around a worker's failure: ignored once the worker's own exception is known.
    wrapper: bool = False
    # How much of a path the pattern sees: 0, none (`<path>`); 2, its last two parts (the name
    # of a missing config file says it is one: `configs/train.yaml`).
    path_parts: int = 0


def _innermost_code(tb: ParsedTraceback) -> str:
    return tb.frames[-1][3] if tb.frames else ""


def _used_as_module(m: re.Match, tb: ParsedTraceback) -> bool:
    """`NameError: name 'amp'` where the code does `amp.something`: an import that failed quietly."""
    return bool(re.search(rf"\b{re.escape(m['name'])}\.\w", _innermost_code(tb)))


def _innermost_user_code(tb: ParsedTraceback) -> str:
    return next((code for file, _line, _func, code in reversed(tb.frames) if not is_library_file(file)), "")


def _config_lookup(m: re.Match, tb: ParsedTraceback) -> bool:
    """A KeyError raised while indexing something config-like (in the raising frame or the user's code)."""
    return bool(
        re.search(
            r"(?i)\b(?:conf|config|cfg|hparams?|hp|args|opts?|params|settings|yaml|environ)\w*\b",
            _innermost_code(tb) + " " + _innermost_user_code(tb),
        )
    )


_CONFIG_MODULE = re.compile(
    r"(?i)(?:^|[/\\])(?:\w*config\w*|\w*_args|arg_?parse\w*|arguments|options|settings)"
    r"(?:[/\\]__init__)?\.py$|[/\\]configs?[/\\]"
)


def _raised_in_config_code(m: re.Match, tb: ParsedTraceback) -> bool:
    """Raised by a config/argument module's own validation (deepspeed/runtime/config.py, training_args.py)."""
    return bool(tb.frames) and bool(_CONFIG_MODULE.search(tb.frames[-1][0]))


def _mentions_config(m: re.Match, tb: ParsedTraceback) -> bool:
    """A parse/validation error whose frames or message name something config-like."""
    text = " ".join(f"{f[0]} {f[3]}" for f in tb.frames) + " " + tb.message
    return bool(re.search(r"(?i)config|settings|hparams|\.(?:ya?ml|toml|ini)\b", text))


_DISTRIBUTED_CODE = re.compile(
    r"[/\\](?:torch[/\\]distributed[/\\](?!elastic[/\\]|launcher[/\\]|run\.py|launch\.py)|"
    r"torch[/\\]nn[/\\]parallel[/\\]|deepspeed[/\\](?:runtime[/\\]zero|comm)[/\\])"
)


def _raised_in_distributed_code(m: re.Match, tb: ParsedTraceback) -> bool:
    """Raised by the sharding/parallel wrappers themselves (FSDP, DDP, ZeRO), not by a launcher's summary."""
    launcher = re.search(r"ChildFailedError|SignalException|Process(?:Raised|Exited)Exception", tb.exc_type or "")
    return bool(tb.frames) and not launcher and bool(_DISTRIBUTED_CODE.search(tb.frames[-1][0]))


_CONFIG_HOLDER = re.compile(
    r"(?i)namespace|config|conf$|cfg|args$|arguments|options$|opts$|settings|params$|hparams|hyperparam|flags$|"
    r"^(?:EasyDict|AttrDict|AttributeDict|DotMap|Box|Munch|DictConfig|ConfigDict|FrozenConfigDict)$"
)
_CONFIG_READ = r"\b(?:args|arguments|cfg|conf|config|configs|opt|opts|options|hparams|hp|params|FLAGS|flags|settings|hyperparams)\.{name}\b"


def _config_attribute(m: re.Match, tb: ParsedTraceback) -> bool:
    """`'Namespace' object has no attribute 'x'`: a config object (argparse, a config class, an
    attribute dict) lacks a key; or code reading `args.x`/`cfg.x` hit an AttributeError on x."""
    if _CONFIG_HOLDER.search(m["holder"]):
        return True
    code = _innermost_code(tb) + " " + _innermost_user_code(tb)
    return bool(re.search(_CONFIG_READ.format(name=re.escape(m["name"])), code))


def _raised_in_config_library(m: re.Match, tb: ParsedTraceback) -> bool:
    """An AttributeError/KeyError raised inside a config library (ml_collections, easydict, box)."""
    return any(
        re.search(r"[/\\](?:ml_collections|easydict|box|munch|addict|attrdict)[/\\]", f[0]) for f in tb.frames[-3:]
    )


def _module_level_name(m: re.Match, tb: ParsedTraceback) -> bool:
    """`NameError` raised by a script's module-level code, on a name it uses as a value: a config
    global (nanoGPT-style globals overridden by exec'd config files and --key=value flags) that
    is not defined."""
    if not tb.frames or _used_as_module(m, tb):
        return False
    file, _line, func, _code = tb.frames[-1]
    return func == "<module>" and not is_library_file(file)


# `assert os.path.exists(root)`, `assert os.path.isdir(d)`, `assert Path(p).exists()`, `assert p.is_file()`
_PATH_ASSERT = re.compile(
    r"^assert\s+(?:not\s+)?\(?\s*(?:(?:os\.)?path\.(?:exists|isdir|isfile|lexists)\(|"
    r"[\w.()\[\]'\"]+\.(?:exists|is_dir|is_file)\(\s*\))"
)


def _asserts_a_path(m: re.Match, tb: ParsedTraceback) -> bool:
    """An AssertionError raised by an `assert` that a path exists (timm's dataset readers assert
    `os.path.exists(root)` with no message): the path is missing, whichever frame asserted it."""
    return bool(_PATH_ASSERT.match(_innermost_code(tb).strip()))


_NUMERIC = re.compile(
    r"(?i)^(?:\w+\.)*(?:OverflowError|FloatingPointError)\b|math (?:range|domain) error|"
    r"cannot convert float (?:NaN|infinity) to integer|Out of range float values are not JSON compliant|"
    # binary cross-entropy's range check, which a NaN probability fails
    r"all elements of input should be between 0 and 1|"
    r"\b(?:nan|inf|infinity)\b"
)


def numeric_failure(tb: ParsedTraceback | None) -> bool:
    """An exception about a number out of range or not finite: how a diverging loss crashes
    code that never checks for it (perplexity `math.exp(loss)`, a NaN cast to int, inf in JSON,
    a NaN probability in binary cross-entropy)."""
    return tb is not None and bool(_NUMERIC.search(tb.text))


def _numeric_on_loss(m: re.Match, tb: ParsedTraceback) -> bool:
    """An overflow or NaN computed from the loss itself (`math.exp(loss)` for perplexity)."""
    return bool(re.search(r"(?i)loss", _innermost_code(tb) + " " + _innermost_user_code(tb)))


def R(
    category: str,
    pattern: str,
    weight: float,
    retryable: bool | None = None,
    when: Callable[[re.Match, ParsedTraceback], bool] | None = None,
    wrapper: bool = False,
    path_parts: int = 0,
) -> Rule:
    return Rule(category, re.compile(pattern), weight, retryable, when, wrapper, path_parts)


RULES: tuple[Rule, ...] = (
    # --- out of memory: device (CUDA/XLA/TF) and host
    R(
        "oom",
        r"(?i)CUDA out of memory|OutOfMemoryError|\b(?:HIP|MPS backend|XPU) out of memory|CUDA error: out of memory",
        10,
    ),
    # allocation failures inside CUDA libraries, and Accelerate's batch-size search running out
    R(
        "oom",
        r"CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation|CUDA_ERROR_OUT_OF_MEMORY|"
        r"No executable batch size found",
        9,
    ),
    R("oom", r"RESOURCE_EXHAUSTED|ResourceExhaustedError|Resource exhausted: OOM|OOM when allocating", 10),
    R(
        "oom",
        r"(?i)ran out of memory|out of memory (?:while|trying) to allocate|Out of memory: Killed process|oom[-_]kill|OOMKilled",
        9,
    ),
    # Schedulers' own verdicts, e.g. Slurm's job state as the launcher reports it.
    R("oom", r"\bOUT_OF_MEMORY\b|\bJOB \d+ .*CANCELLED .*\bOUT OF MEMORY\b", 9),
    R(
        "oom",
        r"DefaultCPUAllocator: (?:can't|not enough memory)|\bstd::bad_alloc|\b_?ArrayMemoryError|^MemoryError\b|Cannot allocate memory",
        8,
    ),
    R(
        "oom",
        r"killed by signal: Killed|Signal 9 \(SIGKILL\)|exitcode\s*:\s*-9\b|<Signals\.SIGKILL: 9>|^Killed\s*$|"
        r"(?i:\bexit(?:ed with)? (?:code|status):? 137\b)|signal 9: SIGKILL|^\[\d+\]\s+\d+ killed\s",
        6,
    ),
    # --- loss went NaN/inf
    R(
        "nan_loss",
        r"(?i)(?<![a-z])(?:loss|grad(?:ient)?_?norm)\b.{0,60}\b(?:became|is|was|are|has become) (?:infinite or )?"
        r"(?:nan|inf(?:inity)?|non-finite|not finite)\b|\bnan loss\b|Invalid loss, terminating training|"
        r"returned nan values|Tensor had (?:NaN|Inf) values|loss scale already at minimum",
        9,
    ),
    R("nan_loss", r"FloatingPointError|(?i:\bnon-finite (?:loss|values?|norm)|is non-finite|NaN or Inf found)", 8),
    R(
        "nan_loss",
        r"(?i)(?<![a-z])loss\w*['\"]?\s*[:=]\s*['\"]?(?:nan|[-+]?inf(?:inity)?)\b|reducing loss scale to \d(?:\.\d+)?e-\d{2,}|(?i:NaN in summary histogram)",
        7,
    ),
    R(
        "nan_loss",
        r"(?i)\b(?:nan|inf) (?:detected|encountered)|detected (?:nan|inf)\b|Gradient overflow\.\s+Skipping step",
        5,
    ),
    # sampling from logits that went NaN; an overflow computed from the loss (perplexity)
    R("nan_loss", r"probability tensor contains either `inf`, `nan` or element < 0", 8),
    R("nan_loss", r"^(?:\w+\.)*(?:OverflowError|FloatingPointError)\b|math range error", 8, when=_numeric_on_loss),
    # --- tensor shapes
    R(
        "shape_error",
        r"(?i)size mismatch|shape mismatch|shapes? cannot be multiplied|Incompatible shapes|"
        r"The size of tensor \w+ \(\d+\) must match|Expected input batch_size|Sizes of tensors must match|"
        r"shape '\[[^\]]*\]' is invalid for input of size|Dimensions must be equal|"
        r"operands could not be broadcast|Shapes .{1,80} are incompatible|is incompatible with the layer|"
        r"Target size .{1,60} must be the same as input size|to have \d+ channels, but got|"
        r"Expected \d+D (?:\(unbatched\) or \d+D \(batched\) )?input|cannot reshape (?:array|tensor)|"
        r"matrices expected|dimension specified as -?\d+ but tensor has no dimensions|view size is not compatible with input tensor's size|"
        r"\b(?:dimensions?|shapes?)\b.{0,50}\b(?:to|must) (?:have the same shape|match)\b|size-incompatible|inhomogeneous shape|"
        r"expects each tensor to be equal size",
        8,
    ),
    # a normalisation or recurrent layer checking its input against the sizes it was built with
    R(
        "shape_error",
        r"running_(?:mean|var) should contain \d+ elements not \d+|"
        r"Expected weight to be a vector of size equal to the number of channels in input|"
        r"input\.size\(-1\) must be equal to input_size|Expected hidden(?:\[\d\])? size \(|"
        r"\b(?:input|hidden\d?) has inconsistent (?:input|hidden)_size: got \d+|doesn't match hidden\d? batch size",
        8,
    ),
    # "expected <dimension/size> ... but got": a layer's own shape check
    R(
        "shape_error",
        r"(?i)\bexpect(?:ed|ing)\b.{0,40}\b(?:dimension|dim|shape|size|channels|features|length)\b.{0,30}\bbut (?:got|received|found)\b",
        7,
    ),
    R(
        "shape_error",
        r"(?i)Dimension out of range|index \d+ is out of bounds for dimension|input and target (?:shapes|sizes) do not match",
        6,
    ),
    # --- device, driver and kernel failures
    R(
        "device_error",
        r"(?i)illegal memory access|device-side assert|cuda runtime error|CUBLAS_STATUS_\w+|CUDNN_STATUS_\w+|"
        r"cuDNN error|no kernel image is available|CUDA driver version is insufficient|Found no NVIDIA driver|"
        r"NVIDIA driver on your system is too old|no CUDA GPUs are available|CUDA-capable device|"
        r"Torch not compiled with CUDA enabled|Expected all tensors to be on the same device|"
        r"Input type \(.{1,40}\) and weight type \(.{1,40}\) should be the same|unspecified launch failure|"
        r"misaligned address|CUDA_ERROR_\w+|CUDA unknown error",
        8,
    ),
    # a backend lacking an op or dtype (MPS); cuDNN loaded at another version than built for; TF device placement
    R(
        "device_error",
        r"(?i:\bMPS (?:framework|backend|device)\b.{0,40}(?:doesn't|does not|not) (?:support|implemented)|"
        r"not (?:currently )?implemented for the '?MPS'? device)|DNN library is not found|Loaded runtime CuDNN library|"
        r"Cannot assign a device for operation|Could not satisfy explicit device specification",
        8,
    ),
    R("device_error", r"CUDA error|Assertion `.{1,120}` failed|cudaError\w*", 6),
    # --- distributed runtime
    R("distributed", r"(?i)Address already in use|EADDRINUSE|errno: 98\b", 9, False),  # needs a new port, not a retry
    R(
        "distributed",
        r"Watchdog caught collective operation timeout|Some NCCL operations have failed or timed out|"
        r"DistStoreError|Socket Timeout|(?i:(?:NCCL|c10d|gloo|TCPStore|rendezvous)\b.{0,120}(?:timed out|timeout|Connection reset|"
        r"Connection refused|Connection closed|Broken pipe)|RendezvousTimeoutError|RendezvousConnectionError|DistNetworkError)",
        9,
        True,
    ),
    # a collective that lost its peer over the network: transient more often than not
    R(
        "distributed",
        r"ncclRemoteError|remote process exited or there was a network error|NCCL WARN .{0,80}Connection closed|"
        r"NET/IB : Got (?:async event|completion from peer)|socketStartConnect: Connect to .{0,80} failed|Software caused connection abort",
        8,
        True,
    ),
    R(
        "distributed",
        r"ncclInternalError|ncclSystemError|ncclUnhandledCudaError|ncclInvalidUsage|"
        r"DistBackendError|NCCL error|ProcessGroupNCCL|Expected to have finished reduction in the prior iteration|"
        r"failed to pass monitoredBarrier|Default process group has not been initialized|"
        r"environment variable (?:RANK|WORLD_SIZE|MASTER_ADDR|MASTER_PORT) expected",
        7,
    ),
    R("distributed", r"NCCL WARN", 4),
    # any other exception raised inside FSDP/DDP/ZeRO code: a sharding or wrapping problem
    R("distributed", r".", 4, when=_raised_in_distributed_code),
    R(
        "distributed",
        r"ChildFailedError|Root Cause \(first observed failure\)|ProcessRaisedException|ProcessExitedException",
        5,
        wrapper=True,
    ),
    R("distributed", r"torch\.distributed\.elastic.{0,80}failed \(exitcode|SignalException", 3, wrapper=True),
    # --- missing modules and broken environments
    R(
        "import_error",
        r"ModuleNotFoundError|No module named|cannot open shared object file|undefined symbol:|DLL load failed",
        9,
    ),
    R(
        "import_error",
        r"ImportError|cannot import name|Failed to import|numpy\.dtype size changed|binary incompatibility|"
        r"compiled using NumPy 1\.x cannot be run|_ARRAY_API not found|numpy\.core\.multiarray failed to import",
        8,
    ),
    # a C++/CUDA extension that failed to build (JIT ops of DeepSpeed, apex, custom kernels)
    R("import_error", r"Error building extension '|ninja: build stopped|unsupported GNU version|nvcc fatal", 7),
    # packages installed at incompatible versions; an op missing from a compiled extension (torch vs torchvision)
    R(
        "import_error",
        r"VersionConflict|DistributionNotFound|distribution was not found and is required|"
        r"\boperator \w+::\w+ does not exist",
        7,
    ),
    R("import_error", r"NameError: name '(?P<name>\w+)' is not defined", 7, when=_used_as_module),
    R(
        "import_error",
        r"AttributeError: module '[\w.]+' has no attribute|requires? (?:the )?`?[\w-]+(?:[<>=]=?[\d.]+)`?"
        r"(?: library)?(?:[:,.] Please| to be installed| but it was not found)|is not installed",
        5,
    ),
    # --- missing data, checkpoints, artifacts
    # A launch script's `cd` into a folder that is not there: what fails after it (a script not
    # found from the folder it stayed in) follows from it.
    R("config_error", r"\bcd: [^:\n]+: No such file or directory", 10),
    R(
        "config_error",
        r"can't open file '[^']+': \[Errno 2\]|No such file or directory:? '?[^'\s]*(?:conf|cfg)[^'\s]*\.(?:ya?ml|json|toml|ini|cfg)\b",
        9,
        path_parts=2,
    ),
    R(
        "data_not_found",
        r"FileNotFoundError|No such file or directory|\[Errno 2\]|NotADirectoryError|"
        r"num_samples should be a positive integer value, but got num_samples=0|EmptyDataError",
        8,
    ),
    R(
        "data_not_found",
        r"(?i)(?:can't|cannot|could not|couldn't|unable to) (?:find|locate|open|load|read)\b.{0,120}"
        r"\b(?:files?|datasets?|data|checkpoints?|director(?:y|ies)|path|images?|artifacts?)\b|"
        r"does not contain artifact|(?:dataset|artifact|checkpoint)\b.{0,80}\b(?:doesn't|does not) exist|"
        r"RepositoryNotFoundError|EntryNotFoundError|is not a local folder and is not a valid model identifier|"
        r"(?i:can't load (?:tokenizer|config|the model|model|weights|processor|feature extractor) for)|"
        r"(?i:\b(?:artifact|dataset|checkpoint|file|bucket)\b.{0,80}\bnot found\b)",
        7,
    ),
    R("data_not_found", r"^(?:\w+\.)*AssertionError\b", 8, when=_asserts_a_path),
    # object stores: S3/GCS say 404/NoSuchKey; OpenCV's empty-image assertions follow a failed imread
    R(
        "data_not_found",
        r"An error occurred \((?:404|NoSuchKey|NoSuchBucket)\)|The specified (?:key|bucket) does not exist|"
        r"No such object:|\(-215:Assertion failed\) !_?\w*\.empty\(\)|\(-215:Assertion failed\) size\.width>0",
        8,
    ),
    # --- configuration and command line
    R(
        "config_error",
        r"MissingConfigException|Cannot find primary config|(?i:unrecognized (?:arguments?|options?):)|the following arguments are required|"
        r"error: argument \S+|invalid choice:|Error parsing --[\w-]+:|^Missing from [\w.-]+:$|"
        r"Some specified arguments are not used by the HfArgumentParser|Could not consume arg:|"
        r"Unknown command line flag|Flags parsing error|No such option:|Available options in '|In '[\w/]+': Could not (?:find|load)",
        9,
    ),
    R(
        "config_error",
        r"ConfigAttributeError|ConfigKeyError|MissingMandatoryValue|Missing mandatory value|"
        r"ConfigCompositionException|InterpolationResolutionError|OverrideParseException|"
        r"Could not override '|Key '[^']+' (?:is )?not in struct|Could not find '[^']+' in the config|"
        r"omegaconf\.errors\.\w+|yaml\.(?:scanner|parser|constructor)\.\w+Error|"
        r"(?:Arguments|Config)\.__init__\(\) got an unexpected keyword argument",
        8,
    ),
    # a config object lacks a key: argparse's Namespace, a config class, an attribute dict
    R(
        "config_error",
        r"^(?:\w+\.)*AttributeError: '(?P<holder>\w+)' object has no attribute '(?P<name>\w+)'",
        8,
        when=_config_attribute,
    ),
    R("config_error", r"^(?:\w+\.)*(?:AttributeError|KeyError): ", 8, when=_raised_in_config_library),
    R("config_error", r"^NameError: name '(?P<name>\w+)' is not defined", 7, when=_module_level_name),
    # a config file or --key=value flag sets a key the code does not define (nanoGPT's configurator)
    R(
        "config_error",
        r"(?i)\bunknown (?:config(?:uration)?|hyper-?parameter|override) (?:key|option|parameter|name)s?\b",
        8,
    ),
    # an override of a key a config object does not have, refused by the object itself
    R("config_error", NOT_IN_CONFIG, 8),
    # Lightning's verdict on the Trainer/module set-up; a tokenizer set up without a pad token
    R(
        "config_error",
        r"MisconfigurationException|tokenizer does not have a padding token|"
        r"no padding token is defined",
        8,
    ),
    # cloud/tracker credentials missing or invalid on the job: set-up, a relaunch as is fails again
    R(
        "config_error",
        r"NoCredentialsError|PartialCredentialsError|Unable to locate credentials|DefaultCredentialsError|"
        r"Could not automatically determine credentials|InvalidAccessKeyId|api_key not configured",
        8,
    ),
    R("config_error", r"KeyError: .*", 6, when=_config_lookup),
    # validation raised by a config/arguments module, or a config file that does not parse/validate
    R(
        "config_error",
        r"^(?:\w+\.)*(?:ValueError|AssertionError|TypeError|KeyError|\w*Config\w*Error):",
        6,
        when=_raised_in_config_code,
    ),
    R("config_error", r"JSONDecodeError|TOMLDecodeError|ValidationError", 6, when=_mentions_config),
    R(
        "config_error",
        r"InstantiationException|(?i:(?:unknown|unsupported|invalid|unrecognized) (?:model|optimizer|scheduler|strategy|accelerator|precision|"
        r"backend|lr[_ ]scheduler|loss|activation|config(?:uration)?)\b(?: name| type| value)?)",
        5,
    ),
    # --- infrastructure: node, disk, network, scheduler
    R("infra", r"(?i)No space left on device|ENOSPC|\[Errno 28\]|Disk quota exceeded|EDQUOT", 9),
    R(
        "infra",
        r"(?i)DUE TO (?:PREEMPTION|NODE FAILURE|TIME LIMIT)|\bpreempt(?:ed|ion)\b|NODE_FAIL|BOOT_FAIL|ended: TIMEOUT\b|node failure|"
        r"(?<!closing signal )SIGTERM(?! handler)|got signal: 15\b|\bsignal 15\b|The node was low on resource|fallen off the bus|GPU is lost|"
        r"uncorrectable ECC|ECC error|\bXid\b|Stale file handle|Input/output error|Read-only file system",
        8,
    ),
    # torch.save cut short by a full disk or quota; cloud spot capacity taken back
    R(
        "infra",
        r"PytorchStreamWriter failed writing file|file write failed|unexpected pos \d+ vs \d+|"
        r"(?i:\bspot\b.{0,40}\b(?:reclaim|interrupt|terminat)\w*|\b(?:instance|capacity|node|vm)\b.{0,30}\breclaimed\b)",
        8,
    ),
    # Ray's job supervisor failures: the cluster lost the job, the code did not fail.
    R(
        "infra",
        r"JOB_SUPERVISOR_ACTOR_(?:DIED|UNKNOWN_FAILURE|START_TIMEOUT|START_FAILURE|UNSCHEDULABLE)|"
        r"RaySystemError|NodeDiedError|ActorDiedError: .*(?:node|raylet)|(?i:\b(?:its|the) (?:node|raylet) (?:has )?died\b|node .{0,60}marked (?:as )?dead)",
        8,
    ),
    R("infra", r"(?i)Bus error|SIGBUS|insufficient shared memory|out of shared memory|/dev/shm", 8),
    # a lock on a shared cache (HF datasets/hub, NFS) held by another job or left stale
    R("infra", r"(?i)file lock .{1,300} could not be acquired|filelock\.(?:\w+\.)*Timeout", 6),
    R("infra", r"DataLoader worker \(pid\(?s?\)? [\d, ]+\) exited unexpectedly", 6),  # usually /dev/shm
    # (not "Illegal instruction (core dumped)": a binary built for another CPU fails the same way every time)
    R("infra", r"(?i)Segmentation fault|SIGSEGV|segfault|(?<!Illegal instruction \()core dumped", 7),
    R(
        "infra",
        r"(?i)Network error|ReadTimeout|ConnectTimeout|ConnectionError|Connection (?:reset|refused|aborted)|"
        r"Temporary failure in name resolution|Name or service not known|Max retries exceeded|"
        r"\b50[234] (?:Server Error|Service Unavailable|Bad Gateway|Gateway Time-?out)|RemoteDisconnected|"
        r"Error communicating with wandb|(?:could not|couldn't) connect to|Failed to establish a new connection|"
        r"Network is unreachable|<Response \[50[0234]\]>|\bUnavailableError\b|failed to connect to all addresses|IncompleteRead\(|"
        r"\b(?:ServiceUnavailable|BadGateway|GatewayTimeout|InternalServerError|TooManyRequests|SlowDown)\b|"
        r"\b(?:429|50[0234]) (?:GET|POST|PUT|HEAD|PATCH|DELETE) https?://",
        7,
    ),
    R("infra", r"wandb\.errors\.CommError|\btimed out\b", 4),
)
