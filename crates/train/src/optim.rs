//! Optimizers, learning-rate schedules and gradient clipping.
//!
//! AdamW is candle's update, computed our way: on the CPU by [`CpuAdamW`], in one
//! pass over plain slices per parameter (candle's takes a dozen tensor ops, each
//! allocating, which was a third of a small MLP's step); on CUDA GPUs (`cuda`
//! feature) by `CudaAdamW`, one kernel launch per 16 parameter tensors. Other
//! devices use candle's `AdamW`. SGD with momentum and
//! Nesterov momentum is written here (candle's SGD has neither), with decoupled
//! weight decay as in SGDW. Weight decay applies to weights only: biases and norm
//! parameters get an optimizer without it.

use candle_core::backprop::GradStore;
#[cfg(feature = "cuda")]
use candle_core::cuda_backend::cudarc::driver::CudaSlice;
use candle_core::{Result, Storage, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer as _, ParamsAdamW};

use hpo_kernels::adamw::{AdamWScalars, adamw_update};

use crate::model::{Param, ParamKind};

/// SGD with (Nesterov) momentum and decoupled weight decay.
pub struct Sgd {
    vars: Vec<(Var, Option<Tensor>)>,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
}

impl Sgd {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (var, velocity) in &mut self.vars {
            let Some(grad) = grads.get(var.as_tensor()) else { continue };
            let mut update = grad.clone();
            if self.momentum > 0.0 {
                let v = match velocity.take() {
                    Some(v) => ((v * self.momentum)? + grad)?,
                    None => grad.clone(),
                };
                update = if self.nesterov { (grad + (&v * self.momentum)?)? } else { v.clone() };
                *velocity = Some(v);
            }
            let mut next = (var.as_tensor() - (update * self.lr)?)?;
            if self.weight_decay > 0.0 {
                next = (next - (var.as_tensor() * (self.lr * self.weight_decay))?)?;
            }
            var.set(&next)?;
        }
        Ok(())
    }
}

/// AdamW (Loshchilov and Hutter 2019) with candle's update, for parameters on the
/// CPU: per parameter one pass that updates the moments in place and writes the
/// new values, which replace the parameter's.
pub struct CpuAdamW {
    /// Each parameter with its first and second moments.
    vars: Vec<(Var, Vec<f32>, Vec<f32>)>,
    params: ParamsAdamW,
    steps: i32,
}

impl CpuAdamW {
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> CpuAdamW {
        let vars = vars
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                (var, vec![0.0; n], vec![0.0; n])
            })
            .collect();
        CpuAdamW { vars, params, steps: 0 }
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let scalars = AdamWScalars::new(&self.params, self.steps);
        for (var, m, v) in &mut self.vars {
            let Some(grad) = grads.get(var.as_tensor()) else { continue };
            let grad = grad.contiguous()?;
            let theta = var.as_tensor().contiguous()?;
            let next = {
                let (grad_storage, grad_layout) = grad.storage_and_layout();
                let (theta_storage, theta_layout) = theta.storage_and_layout();
                let g = cpu_f32(&grad_storage, grad_layout)?;
                let t = cpu_f32(&theta_storage, theta_layout)?;
                adamw_update(t, g, m, v, scalars)?
            };
            var.set(&Tensor::from_vec(next, var.shape(), var.device())?)?;
        }
        Ok(())
    }
}

/// AdamW for parameters on a CUDA GPU: the moments live in device buffers, and one
/// kernel launch updates up to 16 parameter tensors in place (candle's AdamW
/// takes a dozen elementwise launches per tensor). Same update as [`CpuAdamW`].
#[cfg(feature = "cuda")]
pub struct CudaAdamW {
    /// Each parameter with its first and second moments.
    vars: Vec<(Var, CudaSlice<f32>, CudaSlice<f32>)>,
    device: candle_core::CudaDevice,
    params: ParamsAdamW,
    steps: i32,
}

#[cfg(feature = "cuda")]
impl CudaAdamW {
    pub fn new(
        vars: Vec<Var>,
        device: &candle_core::CudaDevice,
        params: ParamsAdamW,
    ) -> Result<CudaAdamW> {
        let vars = vars
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                Ok((var, device.alloc_zeros::<f32>(n)?, device.alloc_zeros::<f32>(n)?))
            })
            .collect::<Result<_>>()?;
        Ok(CudaAdamW { vars, device: device.clone(), params, steps: 0 })
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        use hpo_kernels::cuda::{AdamWSlot, adamw_step};
        self.steps += 1;
        let scalars = AdamWScalars::new(&self.params, self.steps);
        let mut with_grads = Vec::with_capacity(self.vars.len());
        for (var, m, v) in &self.vars {
            if let Some(grad) = grads.get(var.as_tensor()) {
                with_grads.push((var.as_tensor(), grad.contiguous()?, m, v));
            }
        }
        let storages: Vec<_> = with_grads
            .iter()
            .map(|(param, grad, _, _)| (param.storage_and_layout(), grad.storage_and_layout()))
            .collect();
        // The kernel writes the parameters through these read guards' pointers:
        // device memory, which Rust does not see, and nothing else uses these
        // storages during the step (candle's own AdamW writes them in place too).
        let mut slots = Vec::with_capacity(storages.len());
        for (((param, param_layout), (grad, grad_layout)), (_, _, m, v)) in
            storages.iter().zip(&with_grads)
        {
            let (Storage::Cuda(param), Storage::Cuda(grad)) = (&**param, &**grad) else {
                candle_core::bail!("CudaAdamW: a parameter or gradient is not on the GPU")
            };
            let (Some((start, end)), Some((g_start, g_end))) =
                (param_layout.contiguous_offsets(), grad_layout.contiguous_offsets())
            else {
                candle_core::bail!("CudaAdamW: a parameter is not contiguous")
            };
            if end - start != m.len() || g_end - g_start != m.len() {
                candle_core::bail!("CudaAdamW: a gradient's size differs from its parameter's")
            }
            slots.push(AdamWSlot {
                param: param.as_cuda_slice::<f32>()?,
                param_offset: start,
                grad: grad.as_cuda_slice::<f32>()?.slice(g_start..g_end),
                m,
                v,
            });
        }
        adamw_step(&self.device, &slots, scalars)
    }
}

/// The CUDA device all `params` are on, if they are all on one.
#[cfg(feature = "cuda")]
fn cuda_device(params: &[Param]) -> Option<candle_core::CudaDevice> {
    match params.first()?.var.device() {
        candle_core::Device::Cuda(device)
            if params.iter().all(|p| p.var.device().same_device(params[0].var.device())) =>
        {
            Some(device.clone())
        }
        _ => None,
    }
}

/// The `f32` values of a contiguous tensor on the CPU.
fn cpu_f32<'a>(storage: &'a Storage, layout: &candle_core::Layout) -> Result<&'a [f32]> {
    let Storage::Cpu(cpu) = storage else {
        candle_core::bail!("CpuAdamW: a parameter is not on the CPU")
    };
    hpo_kernels::fused::contiguous(cpu, layout)
}

/// What the study file chose.
#[derive(Debug, Clone)]
pub struct OptimizerConfig {
    pub name: String,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

/// One optimizer per parameter group (weights decay, the rest don't).
pub enum Optimizer {
    AdamW(Vec<AdamW>),
    CpuAdamW(Vec<CpuAdamW>),
    #[cfg(feature = "cuda")]
    CudaAdamW(Vec<CudaAdamW>),
    Sgd(Vec<Sgd>),
}

impl Optimizer {
    pub fn new(params: &[Param], config: &OptimizerConfig) -> Result<Optimizer> {
        let group = |kind: ParamKind| -> Vec<Var> {
            params.iter().filter(|p| p.kind == kind).map(|p| p.var.clone()).collect()
        };
        let groups =
            [(group(ParamKind::Weight), config.weight_decay), (group(ParamKind::Other), 0.0)];
        let adamw =
            |weight_decay| ParamsAdamW { lr: config.lr, weight_decay, ..ParamsAdamW::default() };
        #[cfg(feature = "cuda")]
        if config.name != "sgd"
            && let Some(device) = cuda_device(params)
        {
            return Ok(Optimizer::CudaAdamW(
                groups
                    .into_iter()
                    .map(|(vars, weight_decay)| CudaAdamW::new(vars, &device, adamw(weight_decay)))
                    .collect::<Result<_>>()?,
            ));
        }
        Ok(match config.name.as_str() {
            "sgd" => Optimizer::Sgd(
                groups
                    .into_iter()
                    .map(|(vars, weight_decay)| Sgd {
                        vars: vars.into_iter().map(|v| (v, None)).collect(),
                        lr: config.lr,
                        momentum: config.momentum,
                        nesterov: config.nesterov,
                        weight_decay,
                    })
                    .collect(),
            ),
            _ if params.iter().all(|p| p.var.device().is_cpu()) => Optimizer::CpuAdamW(
                groups
                    .into_iter()
                    .map(|(vars, weight_decay)| CpuAdamW::new(vars, adamw(weight_decay)))
                    .collect(),
            ),
            _ => Optimizer::AdamW(
                groups
                    .into_iter()
                    .map(|(vars, weight_decay)| AdamW::new(vars, adamw(weight_decay)))
                    .collect::<Result<_>>()?,
            ),
        })
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            Optimizer::AdamW(groups) => groups.iter_mut().try_for_each(|o| o.step(grads)),
            Optimizer::CpuAdamW(groups) => groups.iter_mut().try_for_each(|o| o.step(grads)),
            #[cfg(feature = "cuda")]
            Optimizer::CudaAdamW(groups) => groups.iter_mut().try_for_each(|o| o.step(grads)),
            Optimizer::Sgd(groups) => groups.iter_mut().try_for_each(|o| o.step(grads)),
        }
    }

    pub fn set_lr(&mut self, lr: f64) {
        match self {
            Optimizer::AdamW(groups) => groups.iter_mut().for_each(|o| o.set_learning_rate(lr)),
            Optimizer::CpuAdamW(groups) => groups.iter_mut().for_each(|o| o.set_lr(lr)),
            #[cfg(feature = "cuda")]
            Optimizer::CudaAdamW(groups) => groups.iter_mut().for_each(|o| o.set_lr(lr)),
            Optimizer::Sgd(groups) => groups.iter_mut().for_each(|o| o.lr = lr),
        }
    }
}

/// A learning-rate schedule over training progress measured in epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub kind: String,
    pub lr: f64,
    pub warmup_epochs: f64,
    pub max_epochs: f64,
    pub step_size: f64,
    pub step_gamma: f64,
}

impl Schedule {
    /// The learning rate at `epoch` (fractional: 2.5 is half-way through the third).
    pub fn lr_at(&self, epoch: f64) -> f64 {
        let warmup =
            if self.warmup_epochs > 0.0 { (epoch / self.warmup_epochs).min(1.0) } else { 1.0 };
        let decay = match self.kind.as_str() {
            "cosine" => {
                let span = (self.max_epochs - self.warmup_epochs).max(1e-9);
                let t = ((epoch - self.warmup_epochs) / span).clamp(0.0, 1.0);
                0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            "step" => self.step_gamma.powi((epoch / self.step_size).floor() as i32),
            _ => 1.0,
        };
        self.lr * warmup * decay
    }
}

/// Scales the gradients so their global L2 norm is at most `max_norm`. Returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, params: &[Param], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for param in params {
        if let Some(grad) = grads.get(param.var.as_tensor()) {
            total += grad.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for param in params {
            if let Some(grad) = grads.remove(param.var.as_tensor()) {
                grads.insert(param.var.as_tensor(), (grad * scale)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        let s = |kind: &str, warmup: f64| Schedule {
            kind: kind.into(),
            lr: 1.0,
            warmup_epochs: warmup,
            max_epochs: 10.0,
            step_size: 3.0,
            step_gamma: 0.5,
        };
        assert_eq!(s("constant", 0.0).lr_at(7.0), 1.0);
        assert_eq!(s("constant", 2.0).lr_at(1.0), 0.5, "half-way through warmup");
        assert!((s("cosine", 0.0).lr_at(5.0) - 0.5).abs() < 1e-12);
        assert!(s("cosine", 0.0).lr_at(10.0).abs() < 1e-12);
        assert_eq!(s("step", 0.0).lr_at(2.9), 1.0);
        assert_eq!(s("step", 0.0).lr_at(6.0), 0.25);
    }

    // Reference (PyTorch): w = torch.tensor([1.0], requires_grad=True);
    // opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True)
    // two steps of loss = w**2 give w = 0.8 - 0.1*(1.6 + 0.9*(1.6+0.9*2)) ... computed below.
    #[test]
    fn sgd_nesterov_matches_the_reference_update() {
        let device = candle_core::Device::Cpu;
        let w = Var::new(&[1.0f32], &device).unwrap();
        let params = vec![Param { var: w.clone(), kind: ParamKind::Weight }];
        let config = OptimizerConfig {
            name: "sgd".into(),
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
        };
        let mut opt = Optimizer::new(&params, &config).unwrap();
        let mut expected = 1.0f64;
        let mut velocity = 0.0f64;
        for _ in 0..2 {
            let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            let grad = 2.0 * expected;
            velocity = 0.9 * velocity + grad;
            expected -= 0.1 * (grad + 0.9 * velocity);
        }
        let got = w.as_tensor().to_vec1::<f32>().unwrap()[0] as f64;
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    }

    #[test]
    fn cpu_adamw_matches_candles_adamw() {
        // Odd sizes, weight decay, a learning-rate change midway, and a parameter
        // without a gradient in one step.
        let device = candle_core::Device::Cpu;
        let init_a = Tensor::randn(0f32, 1.0, (7, 13), &device).unwrap();
        let init_b = Tensor::randn(0f32, 1.0, 5, &device).unwrap();
        let params = ParamsAdamW { lr: 0.01, weight_decay: 0.1, ..ParamsAdamW::default() };
        let (ours_a, ours_b) =
            (Var::from_tensor(&init_a).unwrap(), Var::from_tensor(&init_b).unwrap());
        let (ref_a, ref_b) =
            (Var::from_tensor(&init_a).unwrap(), Var::from_tensor(&init_b).unwrap());
        let mut ours = CpuAdamW::new(vec![ours_a.clone(), ours_b.clone()], params.clone());
        let mut reference = AdamW::new(vec![ref_a.clone(), ref_b.clone()], params).unwrap();
        let target = Tensor::randn(0f32, 1.0, (7, 13), &device).unwrap();
        for step in 0..5 {
            if step == 3 {
                ours.params.lr = 0.003;
                reference.set_learning_rate(0.003);
            }
            let loss = |a: &Var, b: &Var| {
                let fit = (a.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap();
                if step == 2 {
                    fit
                } else {
                    (fit + b.as_tensor().sqr().unwrap().sum_all().unwrap()).unwrap()
                }
            };
            ours.step(&loss(&ours_a, &ours_b).backward().unwrap()).unwrap();
            reference.step(&loss(&ref_a, &ref_b).backward().unwrap()).unwrap();
        }
        let max_abs = |t: Tensor| -> f32 {
            t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
        };
        for (got, want, init) in [(&ours_a, &ref_a, &init_a), (&ours_b, &ref_b, &init_b)] {
            let diff = max_abs((got.as_tensor() - want.as_tensor()).unwrap());
            assert!(diff < 1e-6, "largest difference from candle's AdamW: {diff}");
            assert!(max_abs((got.as_tensor() - init).unwrap()) > 1e-3, "the parameter moved");
        }
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let device = candle_core::Device::Cpu;
        let w = Var::new(&[3.0f32, 4.0], &device).unwrap();
        let params = vec![Param { var: w.clone(), kind: ParamKind::Weight }];
        let loss = (w.as_tensor() * 1.0).unwrap().sqr().unwrap().sum_all().unwrap();
        let mut grads = loss.backward().unwrap();
        let norm = clip_grad_norm(&mut grads, &params, 1.0).unwrap();
        assert!((norm - 10.0).abs() < 1e-5);
        let clipped = grads.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert!(((clipped[0].powi(2) + clipped[1].powi(2)).sqrt() - 1.0).abs() < 1e-4);
    }
}
