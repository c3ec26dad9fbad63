//! A small convolutional classifier for square grayscale images (28x28 or 8x8):
//! `blocks` conv blocks (3x3 conv, padding 1 -> [batch norm] -> activation -> 2x2
//! max pool), the channels doubling from `channels`, then a dense head
//! (`hidden` units, dropout) and a linear output.

use candle_core::{Device, Module, Result, Tensor, Var};
use rand::rngs::StdRng;

use crate::model::layers::{self, BatchNorm, Conv2d, Linear};
use hpo_kernels::fused;

use crate::model::{Mode, Model, Param};

/// The shape of a CNN.
#[derive(Debug, Clone, PartialEq)]
pub struct CnnConfig {
    pub in_channels: usize,
    /// Height and width of the (square) input.
    pub size: usize,
    pub n_out: usize,
    pub blocks: usize,
    pub channels: usize,
    pub hidden: usize,
    pub activation: String,
    pub dropout: f64,
    pub batch_norm: bool,
    pub precision: fused::Precision,
}

pub struct Cnn {
    blocks: Vec<(Conv2d, Option<BatchNorm>)>,
    dense: Linear,
    head: Linear,
    activation: String,
    dropout: f64,
}

impl Cnn {
    pub fn new(config: &CnnConfig, rng: &mut StdRng, device: &Device) -> Result<Cnn> {
        let mut blocks = Vec::new();
        let mut channels_in = config.in_channels;
        let mut size = config.size;
        for idx in 0..config.blocks {
            let channels_out = config.channels << idx;
            let conv = Conv2d::new(rng, channels_in, channels_out, 3, 1, device)?
                .in_precision(config.precision);
            let bn = if config.batch_norm {
                Some(BatchNorm::new(channels_out, 0, device)?)
            } else {
                None
            };
            blocks.push((conv, bn));
            channels_in = channels_out;
            size /= 2;
        }
        if size == 0 {
            candle_core::bail!(
                "{} conv blocks halve a {0}x{0} image to nothing; use fewer blocks",
                config.size
            );
        }
        let flat = channels_in * size * size;
        let dense =
            Linear::new(rng, flat, config.hidden, true, device)?.in_precision(config.precision);
        let head = Linear::new(rng, config.hidden, config.n_out, true, device)?
            .in_precision(config.precision);
        Ok(Cnn {
            blocks,
            dense,
            head,
            activation: config.activation.clone(),
            dropout: config.dropout,
        })
    }
}

impl Model for Cnn {
    fn forward(&self, xs: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        // Channels first, `[c, b, h, w]`, through the conv blocks (see Conv2d).
        let mut xs = xs.transpose(0, 1)?;
        for (conv, bn) in &self.blocks {
            if bn.is_none() && layers::is_monotone(&self.activation) {
                xs = conv.forward_pool_activate(&xs, &self.activation)?;
                continue;
            }
            xs = conv.forward_channels_first(&xs)?;
            if let Some(bn) = bn {
                xs = bn.forward(&xs, mode)?;
            }
            // Max pooling commutes with a non-decreasing activation (relu, tanh), so
            // those run on the pooled map, a quarter of the size.
            if layers::is_monotone(&self.activation) {
                xs = layers::activate(&fused::max_pool_2x2(&xs)?, &self.activation)?;
            } else {
                xs = fused::max_pool_2x2(&layers::activate(&xs, &self.activation)?)?;
            }
        }
        let xs = xs.transpose(0, 1)?.flatten_from(1)?;
        let xs = layers::activate(&self.dense.forward(&xs)?, &self.activation)?;
        let xs = layers::dropout(&xs, self.dropout, mode)?;
        self.head.forward(&xs)
    }

    fn params(&self) -> Vec<Param> {
        let mut out = Vec::new();
        for (conv, bn) in &self.blocks {
            out.extend(conv.params());
            if let Some(bn) = bn {
                out.extend(bn.params());
            }
        }
        out.extend(self.dense.params());
        out.extend(self.head.params());
        out
    }

    fn state(&self) -> Vec<Var> {
        let mut out: Vec<Var> = Vec::new();
        for (conv, bn) in &self.blocks {
            out.extend(conv.params().into_iter().map(|p| p.var));
            if let Some(bn) = bn {
                out.extend(bn.state());
            }
        }
        out.extend(self.dense.params().into_iter().map(|p| p.var));
        out.extend(self.head.params().into_iter().map(|p| p.var));
        out
    }
}
