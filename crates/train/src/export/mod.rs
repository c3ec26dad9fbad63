//! A trained model as files a deployment reads: the best epoch's weights of a
//! model that has an inference form ([`Net`]) as safetensors with a JSON
//! description of its steps (what a trial keeps in its folder, and what
//! `hpo export-model` writes), and as ONNX ([`onnx`]).
//!
//! `model.safetensors` holds each step's tensors as `steps.N.weight`,
//! `steps.N.bias`, `steps.N.scale`, `steps.N.shift`, `steps.N.gamma`,
//! `steps.N.beta`; `model.json` lists the steps in order (`dense`, `affine`,
//! `layer_norm` with its epsilon, `activation` with its name) with the model's
//! input and output widths, and whatever the caller adds (hyperparameters,
//! metrics).

pub mod onnx;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::{Value, json};

use crate::compress::{Net, Step};

/// The file of the weights, in a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The file of the steps and the model's description, in a model folder.
pub const DESCRIPTION_FILE: &str = "model.json";
/// The `format` a description names.
const FORMAT: &str = "hpo-net-1";

/// Why a model could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The folder holds no model hpo can read, or a damaged one.
    #[error("{path}: {message}")]
    Unreadable {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// Writes `net` into `dir` (created if missing): its weights and its
/// description, with `extra`'s fields (an object) added to the description.
pub fn save(net: &Net, dir: &Path, extra: &Value) -> Result<(), ExportError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ExportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut steps = Vec::new();
    for (i, step) in net.steps.iter().enumerate() {
        let mut put = |name: &str, tensor: &Tensor| {
            tensors.insert(format!("steps.{i}.{name}"), tensor.clone());
        };
        steps.push(match step {
            Step::Dense { weight, bias } => {
                put("weight", weight);
                if let Some(bias) = bias {
                    put("bias", bias);
                }
                let (out, inp) = weight.dims2()?;
                json!({"op": "dense", "in": inp, "out": out, "bias": bias.is_some()})
            }
            Step::Affine { scale, shift } => {
                put("scale", scale);
                put("shift", shift);
                json!({"op": "affine"})
            }
            Step::LayerNorm { gamma, beta, eps } => {
                put("gamma", gamma);
                put("beta", beta);
                json!({"op": "layer_norm", "eps": eps})
            }
            Step::Activation(name) => json!({"op": "activation", "name": name}),
            Step::Int8(_) | Step::Sparse(_) | Step::LowRank(_) => {
                return Err(candle_core::Error::Msg(
                    "only a float net is written as a model folder".to_owned(),
                )
                .into());
            }
        });
    }
    let weights = dir.join(WEIGHTS_FILE);
    candle_core::safetensors::save(&tensors, &weights)?;
    let mut description = json!({
        "format": FORMAT,
        "inputs": net.inputs()?,
        "outputs": net.outputs()?,
        "steps": steps,
    });
    if let (Some(into), Some(from)) = (description.as_object_mut(), extra.as_object()) {
        for (key, value) in from {
            into.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let path = dir.join(DESCRIPTION_FILE);
    let text = serde_json::to_string_pretty(&description).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(io(&path))
}

/// The net in `dir` and its description, as [`save`] wrote them.
pub fn load(dir: &Path) -> Result<(Net, Value), ExportError> {
    let path = dir.join(DESCRIPTION_FILE);
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|source| ExportError::Io { path: shown.clone(), source })?;
    let unreadable = |message: String| ExportError::Unreadable { path: shown.clone(), message };
    let description: Value =
        serde_json::from_str(&text).map_err(|err| unreadable(format!("not JSON: {err}")))?;
    if description["format"] != FORMAT {
        return Err(unreadable(format!(
            "not a model hpo wrote (format {})",
            description["format"]
        )));
    }
    let weights = dir.join(WEIGHTS_FILE);
    let mut tensors = candle_core::safetensors::load(&weights, &Device::Cpu).map_err(|err| {
        ExportError::Unreadable { path: weights.display().to_string(), message: err.to_string() }
    })?;
    let mut take = |i: usize, name: &str| {
        tensors
            .remove(&format!("steps.{i}.{name}"))
            .ok_or_else(|| unreadable(format!("the weights lack steps.{i}.{name}")))
    };
    let mut steps = Vec::new();
    let listed = description["steps"].as_array().cloned().unwrap_or_default();
    for (i, step) in listed.iter().enumerate() {
        steps.push(match step["op"].as_str() {
            Some("dense") => Step::Dense {
                weight: take(i, "weight")?,
                bias: if step["bias"] == true { Some(take(i, "bias")?) } else { None },
            },
            Some("affine") => Step::Affine { scale: take(i, "scale")?, shift: take(i, "shift")? },
            Some("layer_norm") => Step::LayerNorm {
                gamma: take(i, "gamma")?,
                beta: take(i, "beta")?,
                eps: step["eps"].as_f64().unwrap_or(1e-5),
            },
            Some("activation") => {
                Step::Activation(step["name"].as_str().unwrap_or("relu").to_owned())
            }
            other => return Err(unreadable(format!("step {i} has an unknown op {other:?}"))),
        });
    }
    Ok((Net { steps }, description))
}
