//! A GPT-style character-level language model: token and position embeddings,
//! `layers` pre-norm blocks (causal multi-head self-attention, then a 4x MLP, each
//! in a residual branch with dropout), a final layer norm, and a linear head whose
//! weights may be tied to the token embedding.

use candle_core::{Device, Module, Result, Tensor, Var};
use rand::Rng;
use rand::rngs::StdRng;

use crate::model::layers::{self, LayerNorm, Linear};
use hpo_kernels::fused::{self, AttentionDropout};

use crate::model::{Mode, Model, Param};

/// The shape of a transformer LM.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerConfig {
    pub vocab: usize,
    pub context: usize,
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    pub dropout: f64,
    pub tie_weights: bool,
    pub precision: fused::Precision,
}

struct Block {
    ln1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    ln2: LayerNorm,
    fc: Linear,
    out: Linear,
}

pub struct Transformer {
    config: TransformerConfig,
    token: Var,
    position: Var,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    head: Option<Linear>,
}

impl Transformer {
    pub fn new(
        config: &TransformerConfig,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<Transformer> {
        let d = config.d_model;
        if config.heads == 0 || !d.is_multiple_of(config.heads) {
            candle_core::bail!("d_model ({d}) must be a multiple of heads ({})", config.heads);
        }
        let token = layers::normal(rng, &[config.vocab, d], 0.02, device)?;
        let position = layers::normal(rng, &[config.context, d], 0.02, device)?;
        let mut blocks = Vec::new();
        for _ in 0..config.layers {
            let precision = config.precision;
            blocks.push(Block {
                ln1: LayerNorm::new(d, device)?,
                qkv: Linear::new(rng, d, 3 * d, true, device)?.in_precision(precision),
                proj: Linear::new(rng, d, d, true, device)?.in_precision(precision),
                ln2: LayerNorm::new(d, device)?,
                fc: Linear::new(rng, d, 4 * d, true, device)?.in_precision(precision),
                out: Linear::new(rng, 4 * d, d, true, device)?.in_precision(precision),
            });
        }
        let head = if config.tie_weights {
            None
        } else {
            Some(Linear::new(rng, d, config.vocab, false, device)?.in_precision(config.precision))
        };
        Ok(Transformer {
            config: config.clone(),
            token,
            position,
            blocks,
            ln_f: LayerNorm::new(d, device)?,
            head,
        })
    }

    fn attention(&self, block: &Block, xs: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let qkv = block.qkv.forward(xs)?;
        let p = self.config.dropout;
        let dropout = match mode.rng() {
            Some(rng) if p > 0.0 => Some(AttentionDropout { p: p as f32, seed: rng.random() }),
            _ => None,
        };
        let attended =
            fused::causal_attention(&qkv, self.config.heads, dropout, self.config.precision)?;
        block.proj.forward(&attended)
    }
}

impl Model for Transformer {
    /// `xs`: token ids `[batch, t]` (u32), t <= context. Returns logits `[batch, t, vocab]`.
    fn forward(&self, xs: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let t = xs.dim(1)?;
        let tokens = fused::embedding(self.token.as_tensor(), xs)?;
        let positions = self.position.as_tensor().narrow(0, 0, t)?;
        let mut x = fused::add_trailing(&tokens, &positions)?;
        x = layers::dropout(&x, self.config.dropout, mode)?;
        for block in &self.blocks {
            let attn = self.attention(block, &block.ln1.forward(&x)?, mode)?;
            x = (x + layers::dropout(&attn, self.config.dropout, mode)?)?;
            let hidden = fused::gelu(&block.fc.forward(&block.ln2.forward(&x)?)?)?;
            let mlp = block.out.forward(&hidden)?;
            x = (x + layers::dropout(&mlp, self.config.dropout, mode)?)?;
        }
        let x = self.ln_f.forward(&x)?;
        match &self.head {
            Some(head) => head.forward(&x),
            None => fused::linear(&x, self.token.as_tensor(), None, self.config.precision),
        }
    }

    fn params(&self) -> Vec<Param> {
        let mut out = vec![Param::weight(&self.token), Param::weight(&self.position)];
        for block in &self.blocks {
            out.extend(block.ln1.params());
            out.extend(block.qkv.params());
            out.extend(block.proj.params());
            out.extend(block.ln2.params());
            out.extend(block.fc.params());
            out.extend(block.out.params());
        }
        out.extend(self.ln_f.params());
        if let Some(head) = &self.head {
            out.extend(head.params());
        }
        out
    }

    fn state(&self) -> Vec<Var> {
        self.params().into_iter().map(|p| p.var).collect()
    }
}

/// Mean cross-entropy of next-token logits `[b, t, v]` against targets `[b, t]`.
pub fn lm_loss(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    fused::cross_entropy(&logits.reshape((b * t, v))?, &targets.reshape(b * t)?, 0.0)
}
