"""LightningDataModule over the train/val shard folders."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from depthdif.dataset import ShardDataset
from depthdif.errors import DataError
from depthdif.io import seed_for

log = logging.getLogger("depthdif.training")


class ShardDataModule(L.LightningDataModule):
    """Shuffled train batches (drop_last) and ordered val batches of `ShardDataset` items.

    The shuffle order of epoch e is drawn from seed_for("loader", seed, e) (see `set_epoch`).
    Persistent workers when num_workers > 0, except with augmentation: the per-epoch draw
    (`ShardDataset.set_epoch`) must reach freshly started workers. `channels_last` converts
    the 4-D batch tensors after the device transfer.
    """

    def __init__(
        self,
        train_dir: str | os.PathLike[str],
        val_dir: str | os.PathLike[str],
        *,
        batch_size: int,
        num_workers: int = 0,
        augment: bool = False,
        seed: int = 0,
        pin_memory: bool = False,
        channels_last: bool = False,
        item_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
    ) -> None:
        super().__init__()
        self.item_fn = item_fn
        self.train_dir, self.val_dir = Path(train_dir), Path(val_dir)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.pin_memory = bool(pin_memory)
        self.channels_last = bool(channels_last)
        self.train_set: ShardDataset | None = None
        self.val_set: ShardDataset | None = None
        self._shuffle = torch.Generator().manual_seed(seed_for("loader", self.seed, 0))

    def set_epoch(self, epoch: int) -> None:
        """Shuffle order and augmentation draw of `epoch` (a resumed run repeats them exactly)."""
        self._shuffle.manual_seed(seed_for("loader", self.seed, epoch))
        if self.train_set is not None:
            self.train_set.set_epoch(epoch)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = ShardDataset(self.train_dir, augment=self.augment, seed=self.seed, item_fn=self.item_fn)
            self.val_set = ShardDataset(self.val_dir, item_fn=self.item_fn)
            for name, ds in (("train", self.train_set), ("val", self.val_set)):
                if len(ds) == 0:
                    raise DataError(
                        f"{ds.folder}: the {name} split has no patches; enlarge data.region/periods or "
                        "patches.split.fractions"
                    )

    def _loader(self, dataset: ShardDataset, *, train: bool) -> DataLoader:
        batch_size = self.batch_size
        if train and len(dataset) < batch_size:
            # drop_last would otherwise leave an empty epoch
            log.warning("train.batch_size %d > %d train patches: using %d", batch_size, len(dataset), len(dataset))
            batch_size = len(dataset)
        generator = self._shuffle if train else None
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train,
            drop_last=train,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0 and not (train and self.augment),
            pin_memory=self.pin_memory,
        )

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        if self.channels_last:
            return {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in batch.items()}
        return batch

    def train_dataloader(self) -> DataLoader:
        self.setup()
        assert self.train_set is not None
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        assert self.val_set is not None
        return self._loader(self.val_set, train=False)
