"""Seed 2 of the study ``localization_finetune`` (:mod:`course_lib.studies.localization_finetune`)."""

from .localization_finetune import shard

STUDY = shard(2)
