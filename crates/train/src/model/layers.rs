//! Seeded layers. candle's own initializers and dropout draw from an unseeded RNG on
//! CPU, so weights are drawn from the trial's RNG (PyTorch's default schemes) and
//! dropout masks too; that is what makes a CPU trial reproducible from its seed.

use candle_core::{D, DType, Device, Module, Result, Tensor, Var};
use rand::Rng;
use rand::rngs::StdRng;

use crate::model::{Mode, Param};

/// A variable of `shape` drawn uniformly from ±`bound`.
pub fn uniform(rng: &mut StdRng, shape: &[usize], bound: f64, device: &Device) -> Result<Var> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..=bound) as f32).collect();
    Var::from_tensor(&Tensor::from_vec(data, shape, device)?)
}

/// A variable of `shape` drawn from N(0, std²) (Box-Muller, from the trial's RNG).
pub fn normal(rng: &mut StdRng, shape: &[usize], std: f64, device: &Device) -> Result<Var> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            let u1: f64 = rng.random_range(f64::EPSILON..1.0);
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect();
    Var::from_tensor(&Tensor::from_vec(data, shape, device)?)
}

fn constant(value: f32, shape: &[usize], device: &Device) -> Result<Var> {
    Var::from_tensor(&(Tensor::ones(shape, DType::F32, device)? * value as f64)?)
}

/// `y = x W^T + b`, PyTorch's default init (uniform ±1/sqrt(fan_in)).
pub struct Linear {
    weight: Var,
    bias: Option<Var>,
}

impl Linear {
    pub fn new(
        rng: &mut StdRng,
        fan_in: usize,
        fan_out: usize,
        bias: bool,
        device: &Device,
    ) -> Result<Linear> {
        let bound = 1.0 / (fan_in as f64).sqrt();
        let weight = uniform(rng, &[fan_out, fan_in], bound, device)?;
        let bias = if bias { Some(uniform(rng, &[fan_out], bound, device)?) } else { None };
        Ok(Linear { weight, bias })
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn params(&self) -> Vec<Param> {
        let mut out = vec![Param::weight(&self.weight)];
        out.extend(self.bias.iter().map(Param::other));
        out
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let w = self.weight.as_tensor();
        // Batched inputs ([b, t, in]) multiply by a broadcast weight.
        let ys = match xs.dims() {
            [b, t, _] => xs.reshape((b * t, ()))?.matmul(&w.t()?)?.reshape((*b, *t, ()))?,
            _ => xs.matmul(&w.t()?)?,
        };
        match &self.bias {
            Some(bias) => ys.broadcast_add(bias.as_tensor()),
            None => Ok(ys),
        }
    }
}

/// A 2-d convolution (`padding` on every side, stride 1), PyTorch's default init.
pub struct Conv2d {
    weight: Var,
    bias: Var,
    padding: usize,
}

impl Conv2d {
    pub fn new(
        rng: &mut StdRng,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        padding: usize,
        device: &Device,
    ) -> Result<Conv2d> {
        let bound = 1.0 / ((in_channels * kernel * kernel) as f64).sqrt();
        Ok(Conv2d {
            weight: uniform(rng, &[out_channels, in_channels, kernel, kernel], bound, device)?,
            bias: uniform(rng, &[out_channels], bound, device)?,
            padding,
        })
    }

    pub fn params(&self) -> Vec<Param> {
        vec![Param::weight(&self.weight), Param::other(&self.bias)]
    }
}

impl Module for Conv2d {
    /// Convolution as unfold + matmul: the input's shifted windows are stacked into
    /// `[b, c*k*k, h*w]` and multiplied by the `[out, c*k*k]` kernel. Its backward
    /// pass is matmuls and slices, far faster on CPU than candle's direct
    /// `conv_transpose2d` backward.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let (out, _, k, _) = self.weight.as_tensor().dims4()?;
        let p = self.padding;
        let (oh, ow) = (h + 2 * p + 1 - k, w + 2 * p + 1 - k);
        let padded =
            if p > 0 { xs.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)? } else { xs.clone() };
        let mut windows = Vec::with_capacity(k * k);
        for dy in 0..k {
            for dx in 0..k {
                windows.push(padded.narrow(2, dy, oh)?.narrow(3, dx, ow)?);
            }
        }
        // [b, c, k*k, oh, ow] -> [b, c*k*k, oh*ow], matching the kernel's [out, c, k, k] order.
        let columns = Tensor::stack(&windows, 2)?.reshape((b, c * k * k, oh * ow))?;
        let kernel = self.weight.as_tensor().reshape((out, c * k * k))?;
        let ys = kernel.broadcast_matmul(&columns)?.reshape((b, out, oh, ow))?;
        ys.broadcast_add(&self.bias.as_tensor().reshape((1, (), 1, 1))?)
    }
}

/// Batch normalization over dim 1 (features of `[b, f]`, channels of `[b, c, h, w]`),
/// with running statistics for evaluation. Built from plain ops, so it has a
/// backward pass.
pub struct BatchNorm {
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
    momentum: f64,
    eps: f64,
}

impl BatchNorm {
    pub fn new(features: usize, device: &Device) -> Result<BatchNorm> {
        Ok(BatchNorm {
            gamma: constant(1.0, &[features], device)?,
            beta: constant(0.0, &[features], device)?,
            running_mean: constant(0.0, &[features], device)?,
            running_var: constant(1.0, &[features], device)?,
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    pub fn params(&self) -> Vec<Param> {
        vec![Param::other(&self.gamma), Param::other(&self.beta)]
    }

    pub fn state(&self) -> Vec<Var> {
        vec![
            self.gamma.clone(),
            self.beta.clone(),
            self.running_mean.clone(),
            self.running_var.clone(),
        ]
    }

    pub fn forward(&self, xs: &Tensor, mode: &Mode<'_>) -> Result<Tensor> {
        let shape: Vec<usize> =
            xs.dims().iter().enumerate().map(|(i, d)| if i == 1 { *d } else { 1 }).collect();
        let reduce: Vec<usize> = (0..xs.rank()).filter(|d| *d != 1).collect();
        let (mean, var) = if mode.is_train() {
            let n = xs.elem_count() / xs.dim(1)?;
            let mean = xs.mean_keepdim(reduce.as_slice())?;
            let centered = xs.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(reduce.as_slice())?;
            let m = self.momentum;
            let unbiased = (var.detach().flatten_all()? * (n as f64 / (n as f64 - 1.0).max(1.0)))?;
            self.running_mean.set(
                &((self.running_mean.as_tensor() * (1.0 - m))?
                    + (mean.detach().flatten_all()? * m)?)?,
            )?;
            self.running_var
                .set(&((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?)?;
            (mean, var)
        } else {
            (
                self.running_mean.as_tensor().reshape(shape.as_slice())?,
                self.running_var.as_tensor().reshape(shape.as_slice())?,
            )
        };
        let normed = xs.broadcast_sub(&mean)?.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed
            .broadcast_mul(&self.gamma.as_tensor().reshape(shape.as_slice())?)?
            .broadcast_add(&self.beta.as_tensor().reshape(shape.as_slice())?)
    }
}

/// Layer normalization over the last dim, with `candle_nn::ops::layer_norm_slow`
/// (the fused `LayerNorm` has no backward pass).
pub struct LayerNorm {
    gamma: Var,
    beta: Var,
}

impl LayerNorm {
    pub fn new(features: usize, device: &Device) -> Result<LayerNorm> {
        Ok(LayerNorm {
            gamma: constant(1.0, &[features], device)?,
            beta: constant(0.0, &[features], device)?,
        })
    }

    pub fn params(&self) -> Vec<Param> {
        vec![Param::other(&self.gamma), Param::other(&self.beta)]
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm_slow(xs, self.gamma.as_tensor(), self.beta.as_tensor(), 1e-5)
    }
}

/// 2x2 max pooling (stride 2, odd edges dropped) as a reshape and two max
/// reductions: its backward pass is a mask, much cheaper on CPU than the backward
/// of candle's `max_pool2d`.
pub fn max_pool_2x2(xs: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let (oh, ow) = (h / 2, w / 2);
    let xs = if h % 2 == 1 || w % 2 == 1 {
        xs.narrow(2, 0, oh * 2)?.narrow(3, 0, ow * 2)?.contiguous()?
    } else {
        xs.clone()
    };
    xs.reshape((b, c, oh, 2, ow, 2))?.max(5)?.max(3)
}

/// An activation by name: relu, tanh, gelu, silu.
pub fn activate(xs: &Tensor, name: &str) -> Result<Tensor> {
    match name {
        "tanh" => xs.tanh(),
        "gelu" => xs.gelu_erf(),
        "silu" => candle_nn::ops::silu(xs),
        _ => xs.relu(),
    }
}

/// Inverted dropout with a mask from the trial's RNG; the identity in evaluation.
pub fn dropout(xs: &Tensor, p: f64, mode: &mut Mode<'_>) -> Result<Tensor> {
    let Some(rng) = mode.rng() else { return Ok(xs.clone()) };
    if p <= 0.0 {
        return Ok(xs.clone());
    }
    let scale = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> =
        (0..xs.elem_count()).map(|_| if rng.random::<f64>() < p { 0.0 } else { scale }).collect();
    xs.mul(&Tensor::from_vec(mask, xs.shape(), xs.device())?)
}

/// Softmax over the last dim from plain ops (`softmax_last_dim` has no backward).
pub fn softmax_last(xs: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(xs, D::Minus1)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn reshape_max_pool_matches_candles_max_pool2d() {
        let device = Device::Cpu;
        for (h, w) in [(8, 8), (7, 9)] {
            let xs = Tensor::rand(-1f32, 1f32, (2, 3, h, w), &device).unwrap();
            let ours = max_pool_2x2(&xs).unwrap();
            let reference = xs.max_pool2d(2).unwrap();
            assert_eq!(ours.dims(), reference.dims());
            let diff = (ours - reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert_eq!(diff, 0.0);
        }
    }

    #[test]
    fn unfold_convolution_matches_candles_conv2d() {
        let device = Device::Cpu;
        let mut rng = StdRng::seed_from_u64(1);
        let conv = Conv2d::new(&mut rng, 3, 5, 3, 1, &device).unwrap();
        let xs = Tensor::rand(-1f32, 1f32, (2, 3, 7, 7), &device).unwrap();
        let ours = conv.forward(&xs).unwrap();
        let reference = xs
            .conv2d(conv.weight.as_tensor(), 1, 1, 1, 1)
            .unwrap()
            .broadcast_add(&conv.bias.as_tensor().reshape((1, (), 1, 1)).unwrap())
            .unwrap();
        let diff = (ours - reference)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
    }
}
