"""The reader-training settings, kept free of torch so the CLI can show their defaults cheaply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TrainConfig:
    base_model: str = "all-MiniLM-L6-v2"
    epochs: float = 2.0
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_seq_len: int = 256
    stride: int = 96
    held_out_percent: int = 10
    seed: int = 13
    device: str = "auto"
    # train on fewer unanswerable year questions (qa.reader_data.balance_year_questions)
    balance_years: bool = True


DEFAULT_TRAIN_CONFIG = TrainConfig()
