"""Which declared name an unknown one abbreviates, is the abbreviation of, or is named by in its
description."""

from __future__ import annotations

from bot.fixers.abbreviations import Declared, abbreviation, described, initials, words


def test_words_split_on_dashes_underscores_and_camel_case():
    assert words("--learning-rate") == ["learning", "rate"]
    assert words("weightDecay") == ["weight", "Decay"]
    assert words("HTTPServer_port") == ["HTTP", "Server", "port"]
    assert words("fp16") == ["fp16"]
    assert initials("num_train_epochs") == "nte"


def test_either_direction_and_any_spelling_of_the_long_form():
    assert abbreviation("lr", ["batch_size", "learning_rate"]) == "learning_rate"
    assert abbreviation("--learning-rate", ["--batch-size", "--lr"]) == "--lr"
    assert abbreviation("wd", ["weightDecay", "lr"]) == "weightDecay"
    assert abbreviation("--bs", ["--batch-size", "--test-batch-size"]) == "--batch-size"


def test_not_an_abbreviation():
    assert abbreviation("lr", ["lr_decay", "min_lr"]) is None  # initials ld, ml
    assert abbreviation("learning_rate", ["local_rank"]) is None  # two long forms are never matched
    assert abbreviation("l", ["learning"]) is None


def test_ties_are_broken_only_by_evidence():
    known = {"--learning_rate": Declared("", "float"), "--local_rank": Declared("", "int")}
    assert abbreviation("--lr", known) is None
    assert abbreviation("--lr", known, "1") is None  # an int is a fine float
    assert abbreviation("--lr", known, "3e-4") == "--learning_rate"
    known["--learning_rate"] = Declared("peak learning rates", "float")
    assert abbreviation("--lr", known, "1") is None  # spelling its own name tells nothing
    known["--learning_rate"] = Declared("peak LR", "float")
    assert abbreviation("--lr", known, "1") == "--learning_rate"


def test_a_declared_abbreviation_whose_help_spells_another_long_form_is_refused():
    assert abbreviation("--learning-rate", {"--lr": Declared("learning rate (default: 1.0)")}) == "--lr"
    assert abbreviation("--learning-rates", {"--lr": Declared("learning rate")}) == "--lr"
    assert abbreviation("--learning-rate", {"--lr": Declared("local rank")}) is None
    assert abbreviation("--learning-rate", {"--lr": Declared("", "int")}, "0.5") is None


def test_the_one_declaration_whose_description_names_it_in_words():
    known = {"--gamma": Declared("discount factor (default: 0.99)", "float"), "--seed": Declared("random seed", "int")}
    assert described("--discount", known, "0.95") == "--gamma"
    assert described("--discount-factor", known) == "--gamma"
    assert described("--discount", known, "high") is None  # no float for --gamma
    assert described("--factor-discount", known) is None  # the words in another order
    both = {"--batch-size": Declared("input batch size for training"), "--test-batch-size": Declared("for testing")}
    assert described("--batch", both) == "--batch-size"
    both["--test-batch-size"] = Declared("input batch size for testing")
    assert described("--batch", both) is None  # named by two
    assert described("--rs", {"--seed": Declared("rs: the random seed")}) is None  # too short to tell
