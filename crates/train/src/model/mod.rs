//! Models: an MLP, a CNN and a GPT-style character language model, all built from
//! the seeded layers in [`layers`].
//!
//! Every model implements [`Model`] (in the spirit of candle's mnist-training
//! example): a forward pass in training or evaluation mode, its trainable
//! parameters (tagged, so weight decay and the L2 penalty skip biases and norms),
//! and its whole state (parameters plus running statistics) for best-epoch
//! snapshots. Layers use only ops that have a backward pass: candle's
//! `candle_nn::LayerNorm`, `RmsNorm` and `ops::softmax_last_dim` are fused ops
//! without one and would silently stop gradients, so they are not used;
//! `hpo_kernels::fused` has hpo's own fused ops (CPU, and CUDA kernels in a `cuda` build), each with a
//! backward pass.

pub mod cnn;
pub mod layers;
pub mod mlp;
pub mod transformer;

use candle_core::{Result, Tensor, Var};
use rand::rngs::StdRng;

/// Training mode carries the RNG for dropout; evaluation mode has none.
pub enum Mode<'a> {
    Train(&'a mut StdRng),
    Eval,
}

impl Mode<'_> {
    /// The RNG, in training mode.
    pub fn rng(&mut self) -> Option<&mut StdRng> {
        match self {
            Mode::Train(rng) => Some(rng),
            Mode::Eval => None,
        }
    }

    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }
}

/// What a parameter is, for regularizers that treat kinds differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Matrices and kernels: decayed and penalized.
    Weight,
    /// Biases, norm scales and shifts: left alone by weight decay and L2.
    Other,
}

/// A trainable variable and its kind.
#[derive(Clone)]
pub struct Param {
    pub var: Var,
    pub kind: ParamKind,
}

impl Param {
    /// A matrix or kernel: decayed and penalized.
    pub fn weight(var: &Var) -> Param {
        Param { var: var.clone(), kind: ParamKind::Weight }
    }

    /// A bias or norm parameter: left alone by weight decay and L2.
    pub fn other(var: &Var) -> Param {
        Param { var: var.clone(), kind: ParamKind::Other }
    }
}

/// A trainable network.
pub trait Model: Send {
    /// Outputs (logits) for a batch. Classification: `[batch, classes]`; the language
    /// model: `[batch, context, vocab]`.
    fn forward(&self, xs: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor>;

    /// The trainable parameters.
    fn params(&self) -> Vec<Param>;

    /// Everything a snapshot must save to restore the model: the parameters and any
    /// running statistics (batch norm).
    fn state(&self) -> Vec<Var>;

    /// The model as inference steps on the CPU, for the compressed variants
    /// (`[compress]`); `None` for a model that has no such form yet.
    fn to_net(&self) -> Option<Result<crate::compress::Net>> {
        None
    }
}

/// Copies a model's state (best-epoch weights).
pub fn snapshot(model: &dyn Model) -> Result<Vec<Tensor>> {
    model.state().iter().map(|v| v.as_tensor().copy()).collect()
}

/// Restores a snapshot taken from the same model.
pub fn restore(model: &dyn Model, snapshot: &[Tensor]) -> Result<()> {
    for (var, saved) in model.state().iter().zip(snapshot) {
        var.set(saved)?;
    }
    Ok(())
}
