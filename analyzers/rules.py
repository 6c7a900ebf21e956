"""The rule registry: every finding convlint can emit, declared as data.

A rule has a stable code, a short name, a default severity, the stage it belongs to and a
one-line summary. ``docs/rules.md`` documents each code (why it matters, an example, the fix);
a test keeps the registry and the docs in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convlint.analyzers.report.findings import Severity, Stage

DOCS_URL = "https://github.com/convlint/convlint/blob/main/docs/rules.md"


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    stage: Stage
    summary: str

    @property
    def docs(self) -> str:
        return f"{DOCS_URL}#{self.code.lower()}-{self.name}"


RULES: dict[str, Rule] = {}


def rule(code: str, name: str, severity: Severity, stage: Stage, summary: str) -> Rule:
    """Declare a rule; codes are unique and never reused."""
    if code in RULES:
        raise ValueError(f"rule {code} declared twice")
    r = Rule(code, name, severity, stage, summary)
    RULES[code] = r
    return r


def get(code: str) -> Rule:
    return RULES[code]


# --- input and analysis errors (exit 2) ------------------------------------------------------
BAD_ARGUMENTS = rule("CL001", "bad-arguments", "error", "input",
                     "convlint could not analyse: the arguments or an input file are invalid")
UNREADABLE_MODEL = rule("CL002", "unreadable-model", "error", "input",
                        "a model file is empty, truncated, corrupt or of an unsupported format")
UNSAFE_MODEL = rule("CL004", "unsafe-model-refused", "error", "input",
                    "a model file would run Python code when loaded (a Keras Lambda layer, a "
                    "pickle); convlint refused to load it")
FRAMEWORK_MISSING = rule("CL005", "framework-not-installed", "error", "input",
                         "the check needs a framework (TensorFlow, torch) that is not installed in "
                         "this environment; the message names the extra to install")
TORCHSCRIPT_DEPRECATED = rule("CL006", "torchscript-deprecated", "info", "input",
                              "a model is a TorchScript file; torch.jit is deprecated in favour of "
                              "torch.export (.pt2)")
INTERNAL_ERROR = rule("CL009", "internal-error", "error", "runtime",
                      "convlint itself failed; please report it with the evidence")

# --- runtime: crashes and the TVM cross-check ------------------------------------------------
MODEL_CRASH = rule("CL003", "model-crash", "error", "runtime",
                   "a model fails to load, compile or run in its native runtime")
TVM_MISMATCH = rule("CL010", "tvm-native-mismatch", "warning", "runtime",
                    "TVM and the native runtime disagree on the same model: a frontend or kernel "
                    "fault, not the converter's")
TVM_UNAVAILABLE = rule("CL011", "tvm-unavailable", "info", "runtime",
                       "TVM could not import or compile a model; the TVM cross-check was skipped")
NOISE_TOLERANCE = rule("CL012", "noise-adapted-tolerance", "info", "runtime",
                       "tolerances were widened to the numeric noise measured between runtimes")
WORKER_CRASHED = rule("CL014", "worker-crashed", "error", "runtime",
                      "the background worker running a check crashed or hung; the check was "
                      "abandoned and the worker replaced")
RUNTIME_KERNEL_REFUSED = rule(
    "CL015",
    "runtime-kernel-refused",
    "error",
    "runtime",
    "the target runtime's default kernels (a delegate) refuse a node that "
    "its plain kernels run: a runtime fault, not the converter's",
)
TVM_PATH = rule("CL013", "tvm-import-path", "info", "runtime",
                "a model reached TVM through an intermediate conversion, which is recorded")

# --- inputs ----------------------------------------------------------------------------------
LAYOUT_TRANSPOSED = rule("CL020", "layout-transposed", "info", "input",
                         "source and target inputs differ in layout (NHWC/NCHW); inputs were "
                         "transposed for the target")
IO_MISMATCH = rule("CL021", "io-mismatch", "error", "input",
                   "source and target inputs cannot be matched (count, rank or size differ)")

# --- graph: output-level divergence ----------------------------------------------------------
OUTPUTS_DIVERGE = rule("CL100", "outputs-diverge", "error", "graph",
                       "the converted model's outputs differ from the source's beyond tolerance")
OUTPUT_SHAPE = rule("CL101", "output-shape-mismatch", "error", "graph",
                    "an output of the converted model has a different shape or count")

NOT_SAME_MODEL = rule("CL102", "not-the-same-model", "error", "graph",
                      "source and target are not the same model (another architecture or other "
                      "weights): no layer of the source is found in the target")
# --- graph: localization ---------------------------------------------------------------------
FIRST_DIVERGENT = rule("CL110", "first-divergent-layer", "error", "graph",
                       "the first source layer whose output the target no longer reproduces")

# --- parameters (stage 2) --------------------------------------------------------------------
WEIGHTS_QUANTIZED = rule("CL201", "weights-quantized", "error", "parameters",
                         "a layer's weights were quantized (int8 storage or a fake-quant grid)")
WEIGHTS_FP16 = rule("CL202", "weights-float16", "error", "parameters",
                    "a layer's weights lost precision to float16")
KERNEL_TRANSPOSED = rule("CL203", "kernel-transposed", "error", "parameters",
                         "a convolution kernel's height and width were swapped")
WEIGHTS_CORRUPTED = rule("CL204", "weights-corrupted", "error", "parameters",
                         "a layer's weights or bias differ from the source's with no benign cause")
INT8_FAULT = rule("CL205", "int8-quantization-fault", "error", "parameters",
                  "a full-integer target's layer loses far more than its quantization step "
                  "allows (an outlier activation range, calibration narrower than the inputs)")
INT8_NOISE = rule("CL206", "within-int8-noise", "info", "parameters",
                  "a full-integer target differs from its float source only by quantization "
                  "noise: every layer near its step, the outputs within the noise budget")

# --- conversion tool (stage 1) ---
TARGET_NODE_REJECTED = rule("CL402", "target-node-rejected", "error", "conversion-tool",
                            "the converter wrote a node the target runtime cannot load or run; "
                            "the source layer it came from is named")
CONVERTER_SETTING = rule("CL403", "converter-setting", "error", "conversion-tool",
                         "re-converting the source with other converter settings gives an "
                         "equivalent model: the setting used is the culprit")
CONVERTER_QUANTIZED = rule("CL401", "converter-quantized-weights", "error", "conversion-tool",
                           "the converter's settings quantized the weights; re-converting "
                           "without them removes the fault")

# --- hyperparameters (stage 3) ---------------------------------------------------------------
CONV_GEOMETRY = rule("CL301", "conv-geometry-changed", "error", "hyperparameters",
                     "a convolution's strides, dilations or padding differ from the source's")
ACTIVATION_BOUNDS = rule("CL302", "activation-bounds-changed", "error", "hyperparameters",
                         "an activation clips to other bounds than the source's (ReLU6, clip)")

# --- graph: structure ------------------------------------------------------------------------
EXTRA_OP = rule("CL120", "extra-op", "error", "graph",
                "the target has an op (Transpose, Pad, Slice, Cast, Q/DQ, activation) the source "
                "does not, where the divergence starts")
MISSING_OP = rule(
    "CL121",
    "missing-op",
    "error",
    "graph",
    "the target lacks an op of the source (an activation), where the divergence starts",
)

# --- inputs (localization) -------------------------------------------------------------------
INPUT_LAYOUT = rule("CL022", "input-layout-changed", "error", "input",
                    "the target's first layer reads the input with its axes permuted")
INPUT_SCALING = rule("CL023", "input-scaling-changed", "error", "input",
                     "the target's first layer reads the input scaled or shifted")
BN_EPSILON = rule("CL303", "bn-epsilon-changed", "error", "hyperparameters",
                  "a BatchNorm was folded or ported with another epsilon than the source's")
OP_SEMANTICS = rule("CL305", "op-semantics-changed", "error", "hyperparameters",
                    "a converted op computes its layer with another attribute value than the "
                    "source's semantics (found by replaying the layer alone and searching the op's "
                    "attributes)")
GELU_APPROXIMATION = rule("CL304", "gelu-approximation-changed", "error", "hyperparameters",
                          "a GELU is computed exactly on one side and with the tanh approximation "
                          "on the other")

# --- conversion scripts: static rules (no execution) -----------------------------------------
TFLITE_DYNAMIC_RANGE = rule("CL411", "tflite-weights-silently-int8", "error", "conversion-tool",
                            "TFLiteConverter with Optimize.DEFAULT and no representative_dataset "
                            "stores weights as int8")
TFLITE_FLOAT16 = rule("CL412", "tflite-float16-weights", "warning", "conversion-tool",
                      "TFLiteConverter with float16 target types stores weights as float16")
TFLITE_INT_IO = rule("CL413", "tflite-integer-io", "warning", "conversion-tool",
                     "the TFLite model's inputs or outputs are int8/uint8: float pipelines break")
TFLITE_EXTRA_RUNTIME = rule(
    "CL414",
    "tflite-needs-extra-ops",
    "warning",
    "conversion-tool",
    "custom or TF select ops: the model needs a runtime with those ops linked",
)
TFLITE_LEGACY = rule("CL415", "tflite-legacy-converter", "warning", "conversion-tool",
                     "experimental_new_converter=False selects the deprecated TOCO converter")
OPSET_TOO_LOW = rule("CL420", "onnx-opset-too-low", "error", "conversion-tool",
                     "the ONNX opset asked for cannot express an op the model uses")
TF2ONNX_EXACT_GELU = rule("CL421", "tf2onnx-exact-gelu", "error", "conversion-tool",
                          "tf2onnx turns exact GELU into an Erfc node, which ONNX runtimes reject")
TORCH_EXPORT_TRAINING = rule("CL430", "torch-export-training-mode", "error", "conversion-tool",
                             "torch.onnx.export in training mode: dropout and batch statistics "
                             "are exported")
TORCH_EXPORT_NOT_EVAL = rule("CL431", "torch-export-model-not-eval", "warning", "conversion-tool",
                             "the exported model was never put in eval() mode")
TORCH_EXPORT_NO_PARAMS = rule("CL432", "torch-export-without-params", "error", "conversion-tool",
                              "export_params=False writes an ONNX model without its weights")
LAYOUT_MISMATCH = rule("CL440", "script-layout-mismatch", "error", "input",
                       "the script feeds the converted model data in another layout (NCHW/NHWC) "
                       "than the model was converted with")
PREPROCESSING_MISMATCH = rule("CL441", "script-preprocessing-mismatch", "warning", "input",
                              "the script normalizes inputs differently for the source and the "
                              "converted model")
BN_EPSILON_PORT = rule("CL442", "bn-epsilon-port", "error", "hyperparameters",
                       "a hand-written weight port between Keras and PyTorch BatchNorms keeps "
                       "each framework's default epsilon (1e-3 against 1e-5)")
SCRIPT_SYNTAX = rule("CL450", "script-syntax-error", "error", "input",
                     "the script does not parse, so convlint could not analyse it")

# --- conversion scripts: instrumented runs (convlint trace) ----------------------------------
CALIBRATION_FEW_SAMPLES = rule("CL470", "calibration-few-samples", "warning", "conversion-tool",
                               "full-integer quantization is calibrated on a handful of samples")
CALIBRATION_RANDOM = rule("CL471", "calibration-random-data", "error", "conversion-tool",
                          "full-integer quantization is calibrated on random data, not real inputs")
DEPTHWISE_PER_TENSOR = rule("CL472", "depthwise-per-tensor", "warning", "conversion-tool",
                            "depthwise convolution kernels are quantized per tensor, not per "
                            "channel")
TRACE_SCRIPT_FAILED = rule("CL460", "trace-script-failed", "error", "runtime",
                           "the traced script raised an exception")
TRACE_TIMEOUT = rule("CL461", "trace-timeout", "error", "runtime",
                     "the traced script did not finish within the timeout")
TRACE_NO_CONVERSION = rule("CL462", "trace-no-conversion", "warning", "conversion-tool",
                           "the traced script made no converter call convlint captures")
CONVERSION_FAILED = rule("CL463", "conversion-failed", "error", "conversion-tool",
                         "a converter call raised an exception")
CAPTURE_INCOMPLETE = rule("CL464", "capture-incomplete", "warning", "conversion-tool",
                          "a conversion was seen, but its source or output could not be saved, "
                          "so it was not checked")

# --- training: probes over a training run (convlint train-check; docs/rules.md "Training") ---
TRAIN_INVALID_LOSS = rule("CL501", "invalid-loss", "error", "loss",
                          "the training loss became NaN or infinite")
TRAIN_NONFINITE_FORWARD = rule(
    "CL502",
    "nonfinite-activation",
    "error",
    "forward",
    "a layer's output became NaN or infinite, before or after its activation",
)
TRAIN_NONFINITE_WEIGHTS = rule(
    "CL503",
    "nonfinite-weights",
    "error",
    "backward",
    "a layer's weights, their update or their gradient became NaN or infinite",
)
TRAIN_INVALID_ACCURACY = rule("CL504", "invalid-accuracy", "error", "metric",
                              "the accuracy is NaN or outside [0, 1]")
TRAIN_NOT_LEARNING = rule("CL505", "model-not-learning", "error", "trend",
                          "neither the loss nor the accuracy improves over training")
TRAIN_NEVER_TRAINED = rule(
    "CL506",
    "parameters-never-train",
    "error",
    "backward",
    "a layer's parameters never train: no gradient reaches them, or no optimizer "
    "updates them (not passed to it, requires_grad False, a frozen layer)",
)
TRAIN_GRAD_ACCUMULATE = rule(
    "CL507",
    "gradients-accumulate",
    "error",
    "backward",
    "gradients accumulate across optimizer steps (no zero_grad in the loop)",
)
TRAIN_GRAD_ZEROED = rule("CL508", "gradients-zeroed-before-step", "error", "backward",
                         "the gradients are cleared after backward and before the optimizer step")
TRAIN_EXPLODING_TENSOR = rule("CL510", "exploding-tensor", "error", "forward",
                              "a layer's outputs or weights grow to huge magnitudes")
TRAIN_UNCHANGED_WEIGHTS = rule("CL511", "unchanged-weights", "error", "backward",
                               "a trainable layer's weights do not change")
TRAIN_SATURATED = rule("CL512", "saturated-activation", "warning", "forward",
                       "a hidden sigmoid or tanh layer is saturated for most inputs")
TRAIN_DEAD_RELU = rule("CL513", "dead-relu", "warning", "forward",
                       "most units of a ReLU layer output zero for every input")
TRAIN_OUTPUT_RANGE = rule("CL514", "output-range-mismatch", "error", "loss",
                          "the model's output range cannot fit the labels")
TRAIN_LOSS_FLAT = rule("CL515", "loss-not-decreasing", "warning", "trend",
                       "the training loss does not decrease")
TRAIN_ACC_FLAT = rule("CL516", "accuracy-not-increasing", "warning", "metric",
                      "the training accuracy does not increase")
TRAIN_VANISHING = rule(
    "CL517",
    "vanishing-gradient",
    "error",
    "backward",
    "the gradients of the first layers are orders of magnitude below the last layer's",
)
TRAIN_EXPLODING_GRAD = rule("CL520", "exploding-gradient", "error", "backward",
                            "the gradients grow by orders of magnitude during training")
TRAIN_OSCILLATING = rule("CL521", "oscillating-loss", "warning", "trend",
                         "the loss swings up and down without converging")
TRAIN_SLOW = rule("CL522", "slow-convergence", "warning", "trend",
                  "the weights move so little per step that the loss barely falls")
TRAIN_SOFTMAX_BCE = rule("CL530", "softmax-with-binary-crossentropy", "error", "loss",
                         "a softmax output trained with binary cross-entropy")
TRAIN_OUTPUT_NOT_PROB = rule("CL531", "classification-output-not-probabilities", "error", "loss",
                             "a ReLU or linear output trained with a probability loss "
                             "(cross-entropy without from_logits)")
TRAIN_SIGMOID_MULTICLASS = rule("CL532", "sigmoid-multiclass-categorical", "error", "loss",
                                "a sigmoid output over several classes trained with categorical "
                                "cross-entropy")
TRAIN_FROM_LOGITS = rule("CL533", "from-logits-mismatch", "error", "loss",
                         "from_logits=True on an output that is already a probability "
                         "(softmax or sigmoid)")
TRAIN_UNNORMALIZED = rule("CL534", "unnormalized-inputs", "warning", "data",
                          "the inputs lie far outside [-1, 1]")
TRAIN_LABEL_RANGE = rule(
    "CL535",
    "labels-outside-loss-range",
    "error",
    "data",
    "class labels outside [0, C) for a cross-entropy, or binary targets outside [0, 1]",
)
TRAIN_LABEL_ENCODING = rule(
    "CL536",
    "label-encoding-mismatch",
    "error",
    "loss",
    "the labels' encoding does not match the loss: one-hot labels with a sparse "
    "loss, class indices with a categorical loss, real-valued targets with a "
    "classification loss",
)
TRAIN_OUTPUT_WIDTH = rule(
    "CL537",
    "output-width-mismatch",
    "error",
    "loss",
    "the output layer's width cannot represent the number of classes in the labels",
)
TRAIN_DOUBLE_ACTIVATION = rule("CL538", "activation-applied-twice", "error", "loss",
                               "a softmax/sigmoid output fed to a loss that applies it again")
TRAIN_LOSS_SHAPE = rule(
    "CL539",
    "loss-shape-mismatch",
    "error",
    "loss",
    "an elementwise loss gets an output and a target of different shapes, which "
    "broadcast to a larger one",
)
TRAIN_SCRIPT_FAILED = rule("CL540", "training-script-failed", "error", "trend",
                           "the training script raised an exception")
TRAIN_TIMEOUT = rule("CL541", "training-timeout", "warning", "trend",
                     "the training script did not finish within the timeout; what was recorded "
                     "was analysed")
TRAIN_NOTHING = rule("CL542", "no-training-observed", "error", "trend",
                     "the script ran, but no Keras fit and no PyTorch optimizer step was seen")
