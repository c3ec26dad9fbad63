//! A float [`Net`] as an ONNX model (opset 17), written by hand in protobuf's
//! wire format: no protobuf or ONNX library is needed to write it, and ONNX
//! Runtime runs it.
//!
//! The graph takes `input` (`[batch, inputs]`, float, an image flattened row by
//! row) and gives `logits` (`[batch, classes]`). Dense steps are `Gemm` with the
//! weight transposed (`transB = 1`); batch norm in its evaluation form is `Mul`
//! and `Add`; layer norm is `LayerNormalization`; ReLU, tanh are `Relu`, `Tanh`;
//! SiLU is `Sigmoid` then `Mul`; GELU (the erf form hpo trains with) is
//! `x * (1 + erf(x / sqrt 2)) / 2` in `Div`, `Erf`, `Add`, `Mul`.

use candle_core::Tensor;

use crate::compress::{Net, Step};

/// The ONNX opset the graph's operators are taken from.
const OPSET: i64 = 17;
/// ONNX's IR version for opset 17.
const IR_VERSION: i64 = 8;
/// `TensorProto.DataType.FLOAT`.
const FLOAT: i64 = 1;

/// The bytes of an ONNX model computing `net`.
pub fn model(net: &Net) -> candle_core::Result<Vec<u8>> {
    let mut graph = Graph::default();
    let mut current = "input".to_owned();
    for (i, step) in net.steps.iter().enumerate() {
        let name = |what: &str| format!("steps.{i}.{what}");
        current = match step {
            Step::Dense { weight, bias } => {
                let mut inputs = vec![current, graph.initializer(&name("weight"), weight)?];
                if let Some(bias) = bias {
                    inputs.push(graph.initializer(&name("bias"), bias)?);
                }
                graph.node("Gemm", &inputs, &name("out"), &[attr_int("transB", 1)])
            }
            Step::Affine { scale, shift } => {
                let scale = graph.initializer(&name("scale"), scale)?;
                let shift = graph.initializer(&name("shift"), shift)?;
                let scaled = graph.node("Mul", &[current, scale], &name("scaled"), &[]);
                graph.node("Add", &[scaled, shift], &name("out"), &[])
            }
            Step::LayerNorm { gamma, beta, eps } => {
                let gamma = graph.initializer(&name("gamma"), gamma)?;
                let beta = graph.initializer(&name("beta"), beta)?;
                let attrs = [attr_int("axis", -1), attr_float("epsilon", *eps as f32)];
                graph.node("LayerNormalization", &[current, gamma, beta], &name("out"), &attrs)
            }
            Step::Activation(kind) => match kind.as_str() {
                "tanh" => graph.node("Tanh", &[current], &name("out"), &[]),
                "silu" => {
                    let gate = graph.node("Sigmoid", &[current.clone()], &name("gate"), &[]);
                    graph.node("Mul", &[current, gate], &name("out"), &[])
                }
                "gelu" => {
                    let root2 = graph.scalar(&name("sqrt2"), std::f32::consts::SQRT_2);
                    let one = graph.scalar(&name("one"), 1.0);
                    let half = graph.scalar(&name("half"), 0.5);
                    let scaled = graph.node("Div", &[current.clone(), root2], &name("scaled"), &[]);
                    let erf = graph.node("Erf", &[scaled], &name("erf"), &[]);
                    let plus = graph.node("Add", &[erf, one], &name("plus"), &[]);
                    let times = graph.node("Mul", &[current, plus], &name("times"), &[]);
                    graph.node("Mul", &[times, half], &name("out"), &[])
                }
                _ => graph.node("Relu", &[current], &name("out"), &[]),
            },
            Step::Int8(_) | Step::Sparse(_) | Step::LowRank(_) => {
                candle_core::bail!("only a float net is written as ONNX")
            }
        };
    }
    // The last step's output, renamed `logits`.
    let logits = graph.node("Identity", &[current], "logits", &[]);
    let mut g = Vec::new();
    for node in &graph.nodes {
        message(&mut g, 1, node);
    }
    string(&mut g, 2, "hpo");
    for tensor in &graph.initializers {
        message(&mut g, 5, tensor);
    }
    message(&mut g, 11, &value_info("input", net.inputs()?));
    message(&mut g, 12, &value_info(&logits, net.outputs()?));
    let mut out = Vec::new();
    int(&mut out, 1, IR_VERSION);
    string(&mut out, 2, "hpo");
    string(&mut out, 3, env!("CARGO_PKG_VERSION"));
    message(&mut out, 7, &g);
    let mut opset = Vec::new();
    string(&mut opset, 1, "");
    int(&mut opset, 2, OPSET);
    message(&mut out, 8, &opset);
    Ok(out)
}

/// The nodes and initializers written so far, each already encoded.
#[derive(Default)]
struct Graph {
    nodes: Vec<Vec<u8>>,
    initializers: Vec<Vec<u8>>,
}

impl Graph {
    /// Adds a node; returns its output's name.
    fn node(&mut self, op: &str, inputs: &[String], output: &str, attrs: &[Vec<u8>]) -> String {
        let mut node = Vec::new();
        for input in inputs {
            string(&mut node, 1, input);
        }
        string(&mut node, 2, output);
        string(&mut node, 3, output);
        string(&mut node, 4, op);
        for attr in attrs {
            message(&mut node, 5, attr);
        }
        self.nodes.push(node);
        output.to_owned()
    }

    /// Adds a float tensor as a constant input; returns its name.
    fn initializer(&mut self, name: &str, tensor: &Tensor) -> candle_core::Result<String> {
        let values = tensor.flatten_all()?.to_vec1::<f32>()?;
        self.initializers.push(tensor_proto(name, tensor.dims(), &values));
        Ok(name.to_owned())
    }

    /// Adds a float scalar as a constant input; returns its name.
    fn scalar(&mut self, name: &str, value: f32) -> String {
        self.initializers.push(tensor_proto(name, &[], &[value]));
        name.to_owned()
    }
}

fn tensor_proto(name: &str, dims: &[usize], values: &[f32]) -> Vec<u8> {
    let mut out = Vec::new();
    for dim in dims {
        int(&mut out, 1, *dim as i64);
    }
    int(&mut out, 2, FLOAT);
    string(&mut out, 8, name);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    bytes(&mut out, 9, &raw);
    out
}

/// A float matrix `[batch, width]` input or output, the batch left free.
fn value_info(name: &str, width: usize) -> Vec<u8> {
    let mut batch = Vec::new();
    string(&mut batch, 2, "batch");
    let mut features = Vec::new();
    int(&mut features, 1, width as i64);
    let mut shape = Vec::new();
    message(&mut shape, 1, &batch);
    message(&mut shape, 1, &features);
    let mut tensor = Vec::new();
    int(&mut tensor, 1, FLOAT);
    message(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    message(&mut ty, 1, &tensor);
    let mut out = Vec::new();
    string(&mut out, 1, name);
    message(&mut out, 2, &ty);
    out
}

/// `AttributeProto` of an integer (`type = INT`).
fn attr_int(name: &str, value: i64) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 1, name);
    int(&mut out, 3, value);
    int(&mut out, 20, 2);
    out
}

/// `AttributeProto` of a float (`type = FLOAT`).
fn attr_float(name: &str, value: f32) -> Vec<u8> {
    let mut out = Vec::new();
    string(&mut out, 1, name);
    key(&mut out, 2, 5);
    out.extend(value.to_le_bytes());
    int(&mut out, 20, 1);
    out
}

// Protobuf's wire format: a key (field number and wire type), then the value.

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn int(out: &mut Vec<u8>, field: u32, value: i64) {
    key(out, field, 0);
    varint(out, value as u64);
}

fn bytes(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(out, field, 2);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn string(out: &mut Vec<u8>, field: u32, value: &str) {
    bytes(out, field, value.as_bytes());
}

fn message(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    bytes(out, field, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let mut out = Vec::new();
        int(&mut out, 1, -1);
        // A negative int64 takes ten bytes, as protobuf writes it.
        assert_eq!(out.len(), 11);
        assert_eq!(out[0], 0x08);
    }
}
