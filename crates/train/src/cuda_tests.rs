//! hpo-train's CUDA paths against their CPU forms: the AdamW optimizer (one kernel
//! launch per 16 tensors) and the augmentation's image moves. Built only with the
//! `cuda` feature; they need a CUDA GPU. The fused ops' own kernels are tested in
//! hpo-kernels.

use candle_core::{Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer as _, ParamsAdamW};
use rand::SeedableRng;

use crate::augment::{Augment, move_images};
use crate::data::ImageShape;
use crate::optim::{CpuAdamW, CudaAdamW};

fn gpu() -> Device {
    Device::new_cuda(0).expect("a CUDA GPU (these tests are built with `cuda` only)")
}

/// A seeded tensor of values uniform in [-1, 1), made on the CPU.
fn uniform(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rand::Rng::random_range(&mut rng, -1.0..1.0)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Largest |a - b| over the largest |b|, both read back to the host.
fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
    let host = |t: &Tensor| t.to_device(&Device::Cpu).unwrap().flatten_all().unwrap();
    let (a, b) = (host(a), host(b));
    let diff: f32 = (&a - &b).unwrap().abs().unwrap().max(0).unwrap().to_scalar().unwrap();
    let scale: f32 = b.abs().unwrap().max(0).unwrap().to_scalar().unwrap();
    if scale == 0.0 { diff } else { diff / scale }
}

#[test]
fn cuda_adamw_matches_the_cpu_update_across_launches() {
    // 21 tensors (two launches of up to 16) of odd sizes, weight decay, a
    // learning-rate change, and a step where some parameters have no gradient.
    let device = gpu();
    let params = ParamsAdamW { lr: 0.01, weight_decay: 0.1, ..ParamsAdamW::default() };
    let inits: Vec<Tensor> =
        (0..21).map(|i| uniform(&[1 + 37 * i % 11, 1 + 5 * i], i as u64)).collect();
    let cpu_vars: Vec<Var> = inits.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let gpu_vars: Vec<Var> =
        inits.iter().map(|t| Var::from_tensor(&t.to_device(&device).unwrap()).unwrap()).collect();
    let candle_vars: Vec<Var> =
        inits.iter().map(|t| Var::from_tensor(&t.to_device(&device).unwrap()).unwrap()).collect();
    let Device::Cuda(cuda) = &device else { unreachable!() };
    let mut ours = CudaAdamW::new(gpu_vars.clone(), cuda, params.clone()).unwrap();
    let mut cpu = CpuAdamW::new(cpu_vars.clone(), params.clone());
    let mut candle = AdamW::new(candle_vars.clone(), params).unwrap();
    let loss = |vars: &[Var], step: usize| {
        let mut total = Tensor::new(0f32, vars[0].device()).unwrap();
        for (i, var) in vars.iter().enumerate() {
            if step == 2 && i % 3 == 0 {
                continue;
            }
            let target = uniform(var.dims(), 500 + i as u64).to_device(var.device()).unwrap();
            let term = (var.as_tensor() - target).unwrap().sqr().unwrap().sum_all().unwrap();
            total = (total + term).unwrap();
        }
        total.backward().unwrap()
    };
    for step in 0..5 {
        if step == 3 {
            ours.set_lr(0.003);
            cpu.set_lr(0.003);
            candle.set_learning_rate(0.003);
        }
        ours.step(&loss(&gpu_vars, step)).unwrap();
        cpu.step(&loss(&cpu_vars, step)).unwrap();
        candle.step(&loss(&candle_vars, step)).unwrap();
    }
    for (i, ((ours, cpu), candle)) in gpu_vars.iter().zip(&cpu_vars).zip(&candle_vars).enumerate() {
        let err = relative_error(ours.as_tensor(), cpu.as_tensor());
        assert!(err < 1e-5, "tensor {i}: CUDA AdamW differs from the CPU update by {err:e}");
        let err = relative_error(ours.as_tensor(), candle.as_tensor());
        assert!(err < 1e-5, "tensor {i}: CUDA AdamW differs from candle's AdamW by {err:e}");
        assert!(relative_error(ours.as_tensor(), &inits[i]) > 1e-3, "tensor {i} moved");
    }
}

#[test]
fn move_images_kernel_moves_as_the_cpu_op() {
    for (i, (n, channels, size)) in [(1, 1, 3), (7, 3, 8), (128, 1, 28)].into_iter().enumerate() {
        let images = uniform(&[n, channels, size, size], i as u64);
        let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
        let shape = ImageShape { channels, size };
        let moves: Vec<_> =
            (0..n).map(|_| Augment::from_name("shift_flip").draw(shape, &mut rng)).collect();
        let on_cpu = move_images(&images, &moves).unwrap();
        let on_gpu = move_images(&images.to_device(&gpu()).unwrap(), &moves).unwrap();
        assert!(on_gpu.device().is_cuda());
        // A gather: the same values exactly.
        assert_eq!(relative_error(&on_gpu, &on_cpu), 0.0, "{n} images {channels}x{size}x{size}");
    }
}
