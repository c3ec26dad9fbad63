//! A multilayer perceptron classifier in candle, with seeded initialization and
//! seeded dropout so a CPU trial is reproducible from its seed.
//!
//! candle's own `Init` and `Dropout` draw from an unseeded RNG on CPU, so weights
//! are drawn here (PyTorch's default `Linear` init: uniform in ±1/sqrt(fan_in))
//! and dropout masks are built from the trial's RNG.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{Linear, ops};
use rand::Rng;
use rand::rngs::StdRng;

/// An MLP: `depth` hidden layers of `hidden` units, then a linear head.
pub struct Mlp {
    layers: Vec<Linear>,
    vars: Vec<Var>,
    activation: String,
    dropout: f64,
}

fn uniform_var(
    rng: &mut StdRng,
    shape: (usize, usize),
    bound: f64,
    device: &Device,
) -> Result<Var> {
    let data: Vec<f32> =
        (0..shape.0 * shape.1).map(|_| rng.random_range(-bound..bound) as f32).collect();
    let tensor = Tensor::from_vec(data, shape, device)?;
    let tensor = if shape.0 == 1 { tensor.squeeze(0)? } else { tensor };
    Var::from_tensor(&tensor)
}

/// The shape of an MLP.
#[derive(Debug, Clone, PartialEq)]
pub struct MlpConfig {
    pub n_in: usize,
    pub n_out: usize,
    pub hidden: usize,
    pub depth: usize,
    pub activation: String,
    pub dropout: f64,
}

impl Mlp {
    pub fn new(config: &MlpConfig, rng: &mut StdRng, device: &Device) -> Result<Mlp> {
        let MlpConfig { n_in, n_out, hidden, depth, ref activation, dropout } = *config;
        let mut sizes = vec![n_in];
        sizes.extend(std::iter::repeat_n(hidden, depth));
        sizes.push(n_out);
        let mut layers = Vec::new();
        let mut vars = Vec::new();
        for pair in sizes.windows(2) {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let weight = uniform_var(rng, (fan_out, fan_in), bound, device)?;
            let bias = uniform_var(rng, (1, fan_out), bound, device)?;
            layers.push(Linear::new(weight.as_tensor().clone(), Some(bias.as_tensor().clone())));
            vars.push(weight);
            vars.push(bias);
        }
        Ok(Mlp { layers, vars, activation: activation.to_owned(), dropout })
    }

    /// The trainable variables, for the optimizer and for best-weights snapshots.
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// Logits. With `train_rng`, dropout is applied (training mode); without, not.
    pub fn forward(&self, xs: &Tensor, mut train_rng: Option<&mut StdRng>) -> Result<Tensor> {
        let mut xs = xs.clone();
        let last = self.layers.len() - 1;
        for (idx, layer) in self.layers.iter().enumerate() {
            xs = layer.forward(&xs)?;
            if idx == last {
                break;
            }
            xs = match self.activation.as_str() {
                "tanh" => xs.tanh()?,
                "gelu" => xs.gelu_erf()?,
                "silu" => ops::silu(&xs)?,
                _ => xs.relu()?,
            };
            if let Some(rng) = train_rng.as_deref_mut()
                && self.dropout > 0.0
            {
                xs = dropout(&xs, self.dropout, rng)?;
            }
        }
        Ok(xs)
    }
}

/// Inverted dropout with a mask from `rng`.
fn dropout(xs: &Tensor, p: f64, rng: &mut StdRng) -> Result<Tensor> {
    let scale = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..xs.elem_count())
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { scale as f32 })
        .collect();
    let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(DType::F32)?;
    xs.mul(&mask)
}
