//! GPU devices and their memory, through the CUDA driver: a device of its own per
//! trial slot ("lane": its own CUDA stream, cuBLAS handle and kernel cache), and
//! the GPU memory in use, read from the CUDA memory pool that candle allocates
//! from.
//!
//! Without the `cuda` feature every GPU function here reports that this build has
//! no CUDA, and the memory figures are `None`; the CPU needs none of it.

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
