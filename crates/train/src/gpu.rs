//! [`SharedGpu`]: what the trials that share one GPU share, a gate through which
//! one trial at a time measures its own share of the GPU's memory, and the counts
//! of its training that [`crate::packing`] reads. The devices and memory figures
//! themselves come from [`hpo_kernels::gpu`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use candle_core::Device;
use hpo_kernels::gpu::{memory_use, reset_peak, synchronize_gpu};

/// What the lanes of one GPU share: a gate through which one trial at a time can
/// measure the memory it takes, with every other trial there paused between
/// steps, and the largest such measurement.
///
/// Every lane's steps (and evaluation chunks) pass the gate as readers, which
/// costs one uncontended atomic operation; a trial's model building and first
/// training step pass it as the writer. With the others paused the device's
/// memory in use holds still, so the rise of its peak during that step is the
/// trial's own: its parameters, gradients, optimizer state and a step's
/// activations.
#[derive(Debug, Default)]
pub struct SharedGpu {
    gate: RwLock<()>,
    /// The largest footprint a trial measured here, in bytes (0 before any).
    largest: AtomicU64,
    /// Device memory usable by trials when that was measured (free, plus what
    /// the trials there held), in bytes.
    usable: AtomicU64,
    /// Training examples (rows, or tokens) its lanes trained, all trials.
    trained: AtomicU64,
    /// Trials that started on it.
    started: AtomicUsize,
    /// Trials that finished on it.
    finished: AtomicUsize,
}

impl SharedGpu {
    /// Leave to hold while running one step beside the other lanes.
    pub fn turn(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pauses the other lanes (once their current step is queued) while held:
    /// for work that must not overlap theirs, such as opening a lane.
    pub fn alone(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pauses the other lanes (once their current step is queued), waits for all
    /// queued work on the GPU, and starts measuring what `device` allocates from here on.
    pub fn measure_alone(&self, device: &Device) -> candle_core::Result<Measurement<'_>> {
        let guard = self.alone();
        synchronize_gpu(device)?;
        let before = memory_use(device)?.map_or(0, |it| it.in_use);
        reset_peak(device)?;
        Ok(Measurement { shared: self, _alone: guard, before })
    }

    /// Counts `examples` more trained by one of its lanes.
    pub fn trained(&self, examples: u64) {
        self.trained.fetch_add(examples, Ordering::Relaxed);
    }

    /// A trial starts training on one of its lanes.
    pub fn trial_started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// A trial that started on one of its lanes ended.
    pub fn trial_ended(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// Where its training stands now.
    pub fn progress(&self) -> crate::packing::Progress {
        crate::packing::Progress {
            now: Instant::now(),
            trained: self.trained.load(Ordering::Relaxed),
            started: self.started.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
        }
    }

    /// The largest footprint measured on this GPU and the memory usable by
    /// trials then, in bytes; `None` before the first measurement.
    pub fn largest_footprint(&self) -> Option<(u64, u64)> {
        let largest = self.largest.load(Ordering::Relaxed);
        (largest > 0).then(|| (largest, self.usable.load(Ordering::Relaxed)))
    }
}

/// A measurement in progress; the other lanes stay paused until it is finished
/// or dropped.
pub struct Measurement<'a> {
    shared: &'a SharedGpu,
    _alone: RwLockWriteGuard<'a, ()>,
    before: u64,
}

impl Measurement<'_> {
    /// Waits for the device and returns the bytes allocated at the peak since the
    /// measurement started, plus `resident` bytes the trial holds from before
    /// (its lane's copy of the data); records the total on the shared GPU.
    pub fn finish(self, device: &Device, resident: u64) -> candle_core::Result<u64> {
        synchronize_gpu(device)?;
        let Some(now) = memory_use(device)? else { return Ok(0) };
        let footprint = now.peak.saturating_sub(self.before) + resident;
        if footprint > self.shared.largest.load(Ordering::Relaxed) {
            self.shared.largest.store(footprint, Ordering::Relaxed);
            self.shared.usable.store(now.free + now.in_use, Ordering::Relaxed);
        }
        Ok(footprint)
    }
}
