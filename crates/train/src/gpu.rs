//! GPU devices for trials that share a GPU: a device of its own per trial slot
//! ("lane": its own CUDA stream, cuBLAS handle and kernel cache), the GPU memory
//! in use, read from the CUDA memory pool that candle allocates from, and
//! [`SharedGpu`], through which a trial measures its own share of that memory.
//!
//! Without the `cuda` feature every GPU function here reports that this hpo has
//! no CUDA; the CPU needs none of it.
#![cfg_attr(feature = "cuda", allow(unsafe_code))]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use candle_core::Device;

/// GPU memory figures of one device, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUse {
    /// Bytes the device's allocations hold now.
    pub in_use: u64,
    /// The most bytes they held at once since the last [`reset_peak`].
    pub peak: u64,
    /// Free device memory (outside the pool's reserve) as the driver reports it.
    pub free: u64,
    /// The device's total memory.
    pub total: u64,
}

/// A new device on GPU `ordinal` with a stream of its own, for one lane of trials.
///
/// The lane's tensors never leave its stream (a lane runs one trial at a time, and
/// its data, model and optimizer state are all made on it), so cudarc's per-use
/// event tracking, which a second stream in a context turns on and which records
/// an event on every kernel argument, is switched off for this device.
#[cfg(feature = "cuda")]
pub fn lane_device(ordinal: usize) -> candle_core::Result<Device> {
    let device = Device::new_cuda_with_stream(ordinal)?;
    // SAFETY: event tracking is switched off for this device's context handle
    // before anything is allocated on it; everything allocated on it is used only
    // on its one stream (see above), so stream order alone keeps uses and frees
    // in sequence.
    unsafe { device.as_cuda_device()?.disable_event_tracking() };
    Ok(device)
}

/// Without CUDA there are no GPU lanes.
#[cfg(not(feature = "cuda"))]
pub fn lane_device(ordinal: usize) -> candle_core::Result<Device> {
    candle_core::bail!("cannot open a lane on cuda:{ordinal}: this hpo was built without CUDA")
}

#[cfg(feature = "cuda")]
mod pool {
    use candle_core::cuda_backend::WrapErr;
    use candle_core::cuda_backend::cudarc::driver::{result, sys};

    use super::MemoryUse;

    /// The memory pool `cuMemAllocAsync` takes from on `device` (cudarc's
    /// allocations go through it).
    fn current_pool(device: &candle_core::CudaDevice) -> candle_core::Result<sys::CUmemoryPool> {
        let stream = device.cuda_stream();
        let ctx = stream.context();
        ctx.bind_to_thread().w()?;
        // SAFETY: a plain driver query on the device of a live context.
        unsafe { result::device::get_mem_pool(ctx.cu_device()) }.w()
    }

    fn attribute(
        pool: sys::CUmemoryPool,
        attr: sys::CUmemPool_attribute,
    ) -> candle_core::Result<u64> {
        let mut value: u64 = 0;
        // SAFETY: the usage attributes are 64-bit counters, written into `value`.
        unsafe { result::mem_pool::get_attribute(pool, attr, (&raw mut value).cast()) }.w()?;
        Ok(value)
    }

    pub fn memory_use(device: &candle_core::CudaDevice) -> candle_core::Result<MemoryUse> {
        let pool = current_pool(device)?;
        let in_use = attribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT)?;
        let peak = attribute(pool, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)?;
        let (free, total) = result::mem_get_info().w()?;
        Ok(MemoryUse { in_use, peak, free: free as u64, total: total as u64 })
    }

    pub fn synchronize_gpu(device: &candle_core::CudaDevice) -> candle_core::Result<()> {
        device.cuda_stream().context().synchronize().w()
    }

    pub fn reset_peak(device: &candle_core::CudaDevice) -> candle_core::Result<()> {
        let pool = current_pool(device)?;
        let mut zero: u64 = 0;
        // SAFETY: setting the high watermark to zero resets it to the current use,
        // the one value the driver accepts for it.
        unsafe {
            result::mem_pool::set_attribute(
                pool,
                sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
                (&raw mut zero).cast(),
            )
        }
        .w()
    }
}

/// The GPU memory in use on `device`'s GPU (shared by every lane there), or `None`
/// on the CPU.
pub fn memory_use(device: &Device) -> candle_core::Result<Option<MemoryUse>> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(cuda) => pool::memory_use(cuda).map(Some),
        _ => Ok(None),
    }
}

/// Waits until everything queued on `device`'s GPU, on any stream, has run.
pub fn synchronize_gpu(device: &Device) -> candle_core::Result<()> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(cuda) => pool::synchronize_gpu(cuda),
        _ => device.synchronize(),
    }
}

/// Starts a new peak of [`memory_use`] on `device`'s GPU from its current use.
pub fn reset_peak(device: &Device) -> candle_core::Result<()> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(cuda) => pool::reset_peak(cuda),
        _ => Ok(()),
    }
}

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
