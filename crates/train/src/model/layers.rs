//! Seeded layers. candle's own initializers and dropout draw from an unseeded RNG on
//! CPU, so weights are drawn from the trial's RNG (PyTorch's default schemes) and
//! dropout masks too; that is what makes a CPU trial reproducible from its seed.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use rand::Rng;
use rand::rngs::StdRng;

use hpo_kernels::fused::{self, drop_threshold};

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
    precision: fused::Precision,
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
        Ok(Linear { weight, bias, precision: fused::Precision::F32 })
    }

    /// This layer with its product in `precision`.
    pub fn in_precision(self, precision: fused::Precision) -> Linear {
        Linear { precision, ..self }
    }

    pub fn weight(&self) -> &Var {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }

    pub fn params(&self) -> Vec<Param> {
        let mut out = vec![Param::weight(&self.weight)];
        out.extend(self.bias.iter().map(Param::other));
        out
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        fused::linear(
            xs,
            self.weight.as_tensor(),
            self.bias.as_ref().map(Var::as_tensor),
            self.precision,
        )
    }
}

/// A 2-d convolution (`padding` on every side, stride 1), PyTorch's default init.
pub struct Conv2d {
    weight: Var,
    bias: Var,
    padding: usize,
    precision: fused::Precision,
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
            precision: fused::Precision::F32,
        })
    }

    /// This convolution with its product in `precision`.
    pub fn in_precision(self, precision: fused::Precision) -> Conv2d {
        Conv2d { precision, ..self }
    }

    pub fn params(&self) -> Vec<Param> {
        vec![Param::weight(&self.weight), Param::other(&self.bias)]
    }
}

impl Conv2d {
    /// This convolution, 2x2 max pooling and a non-decreasing activation in one
    /// (see [`fused::conv_pool_activate`]).
    pub fn forward_pool_activate(&self, xs: &Tensor, activation: &str) -> Result<Tensor> {
        fused::conv_pool_activate(
            xs,
            self.weight.as_tensor(),
            self.bias.as_tensor(),
            self.padding,
            activation,
            self.precision,
        )
    }

    /// Convolution of a channel-first batch `[c, b, h, w]` into `[out, b, oh, ow]`
    /// (see [`fused::conv2d_channels_first`]).
    pub fn forward_channels_first(&self, xs: &Tensor) -> Result<Tensor> {
        fused::conv2d_channels_first(
            xs,
            self.weight.as_tensor(),
            self.bias.as_tensor(),
            self.padding,
            self.precision,
        )
    }
}

/// Batch normalization over one dim (features of `[b, f]`, channels of a
/// channel-first `[c, b, h, w]`), with running statistics for evaluation, by
/// [`fused::batch_norm`].
pub struct BatchNorm {
    gamma: Var,
    beta: Var,
    running_mean: Var,
    running_var: Var,
    channel_dim: usize,
    momentum: f64,
    eps: f64,
}

impl BatchNorm {
    /// Normalizes each of `features` entries along `channel_dim` over all other dims.
    pub fn new(features: usize, channel_dim: usize, device: &Device) -> Result<BatchNorm> {
        Ok(BatchNorm {
            gamma: constant(1.0, &[features], device)?,
            beta: constant(0.0, &[features], device)?,
            running_mean: constant(0.0, &[features], device)?,
            running_var: constant(1.0, &[features], device)?,
            channel_dim,
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    pub fn params(&self) -> Vec<Param> {
        vec![Param::other(&self.gamma), Param::other(&self.beta)]
    }

    /// Evaluation mode as `x * scale + shift` per channel, from the running
    /// statistics: `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`.
    pub fn eval_affine(&self) -> Result<(Tensor, Tensor)> {
        let scale =
            (self.gamma.as_tensor() / (self.running_var.as_tensor() + self.eps)?.sqrt()?)?;
        let shift = (self.beta.as_tensor() - (self.running_mean.as_tensor() * &scale)?)?;
        Ok((scale, shift))
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
        // Channels first (a copy unless they already are), through one fused op.
        let channel = self.channel_dim;
        let xs_first = if channel == 0 { xs.clone() } else { xs.transpose(0, channel)? };
        let stats = if mode.is_train() {
            let stats = fused::batch_stats(&xs_first)?;
            let n = xs.elem_count() / xs.dim(channel)?;
            let m = self.momentum;
            let (mean, var) = (stats.narrow(1, 0, 1)?.flatten_all()?, stats.narrow(1, 1, 1)?);
            let unbiased = (var.flatten_all()? * (n as f64 / (n as f64 - 1.0).max(1.0)))?;
            self.running_mean
                .set(&((self.running_mean.as_tensor() * (1.0 - m))? + (mean * m)?)?)?;
            self.running_var
                .set(&((self.running_var.as_tensor() * (1.0 - m))? + (unbiased * m)?)?)?;
            stats
        } else {
            Tensor::stack(&[self.running_mean.as_tensor(), self.running_var.as_tensor()], 1)?
        };
        let ys = fused::batch_norm(
            &xs_first,
            &stats,
            self.gamma.as_tensor(),
            self.beta.as_tensor(),
            self.eps,
            mode.is_train(),
        )?;
        if channel == 0 { Ok(ys) } else { ys.transpose(0, channel) }
    }
}

/// Layer normalization over the last dim, with [`fused::layer_norm`] (candle's fused
/// `LayerNorm` has no backward pass).
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

    /// Its scale, shift and epsilon.
    pub fn parts(&self) -> (&Var, &Var, f64) {
        (&self.gamma, &self.beta, LAYER_NORM_EPS)
    }
}

/// Layer norm's epsilon.
const LAYER_NORM_EPS: f64 = 1e-5;

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        fused::layer_norm(xs, self.gamma.as_tensor(), self.beta.as_tensor(), LAYER_NORM_EPS)
    }
}

/// An activation by name: relu, tanh, gelu, silu.
pub fn activate(xs: &Tensor, name: &str) -> Result<Tensor> {
    match name {
        "tanh" => xs.tanh(),
        "gelu" => fused::gelu(xs),
        "silu" => candle_nn::ops::silu(xs),
        _ => fused::relu(xs),
    }
}

/// Whether the activation `name` is non-decreasing (so it commutes with max pooling).
pub fn is_monotone(name: &str) -> bool {
    matches!(name, "relu" | "tanh")
}

/// Inverted dropout with a mask seeded by one draw of the trial's RNG (see
/// [`is_dropped`]); the identity in evaluation.
pub fn dropout(xs: &Tensor, p: f64, mode: &mut Mode<'_>) -> Result<Tensor> {
    let Some(rng) = mode.rng() else { return Ok(xs.clone()) };
    if p <= 0.0 {
        return Ok(xs.clone());
    }
    let scale = (1.0 / (1.0 - p)) as f32;
    fused::dropout(xs, rng.random::<u64>(), drop_threshold(p), scale)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn channel_first_convolution_matches_candles_conv2d() {
        let device = Device::Cpu;
        let mut rng = StdRng::seed_from_u64(1);
        let conv = Conv2d::new(&mut rng, 3, 5, 3, 1, &device).unwrap();
        let xs = Tensor::rand(-1f32, 1f32, (2, 3, 7, 7), &device).unwrap();
        let ours = conv
            .forward_channels_first(&xs.transpose(0, 1).unwrap())
            .unwrap()
            .transpose(0, 1)
            .unwrap();
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
