"""Counts the project prints read as a person writes them: one epoch, two epochs."""

from helpers.core.words import counted
from helpers.train.callbacks import start_line


def test_a_count_of_one_takes_the_singular_and_thousands_are_separated():
    assert counted(1, "epoch") == "1 epoch"
    assert counted(0, "epoch") == "0 epochs"
    assert counted(25789, "face") == "25,789 faces"
    assert counted(2, "copy", "copies") == "2 copies"


def test_training_one_epoch_on_one_face_is_said_so():
    assert start_line("densenet121", 1, 32, 1) == (
        "densenet121: training on 1 face, batch 32, up to 1 epoch"
    )
