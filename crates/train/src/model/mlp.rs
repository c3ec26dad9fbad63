//! A multilayer perceptron classifier: `depth` hidden layers of `hidden` units,
//! each Linear -> [norm] -> activation -> dropout, then a linear head.

use candle_core::{Device, Module, Result, Tensor, Var};
use rand::rngs::StdRng;

use crate::model::layers::{self, BatchNorm, LayerNorm, Linear};
use hpo_kernels::fused;

use crate::compress::{Net, Step, to_host};
use crate::model::{Mode, Model, Param};

/// Normalization after each hidden Linear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    None,
    Batch,
    Layer,
}

impl Norm {
    pub fn from_name(name: &str) -> Norm {
        match name {
            "batch" => Norm::Batch,
            "layer" => Norm::Layer,
            _ => Norm::None,
        }
    }
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
    pub norm: Norm,
    pub precision: fused::Precision,
}

enum NormLayer {
    Batch(BatchNorm),
    Layer(LayerNorm),
}

pub struct Mlp {
    hidden: Vec<(Linear, Option<NormLayer>)>,
    head: Linear,
    activation: String,
    dropout: f64,
}

impl Mlp {
    pub fn new(config: &MlpConfig, rng: &mut StdRng, device: &Device) -> Result<Mlp> {
        let mut hidden = Vec::new();
        let mut fan_in = config.n_in;
        for _ in 0..config.depth {
            let linear = Linear::new(rng, fan_in, config.hidden, true, device)?
                .in_precision(config.precision);
            let norm = match config.norm {
                Norm::None => None,
                Norm::Batch => Some(NormLayer::Batch(BatchNorm::new(config.hidden, 1, device)?)),
                Norm::Layer => Some(NormLayer::Layer(LayerNorm::new(config.hidden, device)?)),
            };
            hidden.push((linear, norm));
            fan_in = config.hidden;
        }
        let head =
            Linear::new(rng, fan_in, config.n_out, true, device)?.in_precision(config.precision);
        Ok(Mlp { hidden, head, activation: config.activation.clone(), dropout: config.dropout })
    }
}

impl Mlp {
    /// The MLP in evaluation form: each hidden Linear, its norm (batch norm folded
    /// into a scale and shift by its running statistics), its activation; then
    /// the head. Dropout is the identity in evaluation.
    fn net(&self) -> Result<Net> {
        let dense = |linear: &Linear| -> Result<Step> {
            Ok(Step::Dense {
                weight: to_host(linear.weight().as_tensor())?,
                bias: linear.bias().map(|b| to_host(b.as_tensor())).transpose()?,
            })
        };
        let mut steps = Vec::new();
        for (linear, norm) in &self.hidden {
            steps.push(dense(linear)?);
            match norm {
                Some(NormLayer::Batch(bn)) => {
                    let (scale, shift) = bn.eval_affine()?;
                    steps.push(Step::Affine { scale: to_host(&scale)?, shift: to_host(&shift)? });
                }
                Some(NormLayer::Layer(ln)) => {
                    let (gamma, beta, eps) = ln.parts();
                    steps.push(Step::LayerNorm {
                        gamma: to_host(gamma.as_tensor())?,
                        beta: to_host(beta.as_tensor())?,
                        eps,
                    });
                }
                None => {}
            }
            steps.push(Step::Activation(self.activation.clone()));
        }
        steps.push(dense(&self.head)?);
        Ok(Net { steps })
    }
}

impl Model for Mlp {
    fn forward(&self, xs: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let mut xs = xs.flatten_from(1)?;
        for (linear, norm) in &self.hidden {
            xs = linear.forward(&xs)?;
            xs = match norm {
                Some(NormLayer::Batch(bn)) => bn.forward(&xs, mode)?,
                Some(NormLayer::Layer(ln)) => ln.forward(&xs)?,
                None => xs,
            };
            xs = layers::activate(&xs, &self.activation)?;
            xs = layers::dropout(&xs, self.dropout, mode)?;
        }
        self.head.forward(&xs)
    }

    fn params(&self) -> Vec<Param> {
        let mut out = Vec::new();
        for (linear, norm) in &self.hidden {
            out.extend(linear.params());
            match norm {
                Some(NormLayer::Batch(bn)) => out.extend(bn.params()),
                Some(NormLayer::Layer(ln)) => out.extend(ln.params()),
                None => {}
            }
        }
        out.extend(self.head.params());
        out
    }

    fn to_net(&self) -> Option<Result<Net>> {
        Some(self.net())
    }

    fn state(&self) -> Vec<Var> {
        let mut out: Vec<Var> = Vec::new();
        for (linear, norm) in &self.hidden {
            out.extend(linear.params().into_iter().map(|p| p.var));
            match norm {
                Some(NormLayer::Batch(bn)) => out.extend(bn.state()),
                Some(NormLayer::Layer(ln)) => out.extend(ln.params().into_iter().map(|p| p.var)),
                None => {}
            }
        }
        out.extend(self.head.params().into_iter().map(|p| p.var));
        out
    }
}
