/* Planner names and small shared helpers (a leaf: calls no other file of the planner): dtype,
 * recomputation, attention, device and element-wise kernel names, the element-wise bytes table and its
 * map from the model's kernel calls, rate curves, the calibration log. */
#include "plan/plan_model.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

const char *lmf_plan_dtype_name(lmf_plan_dtype d) {
    switch (d) {
    case LMF_PLAN_FP32: return "fp32";
    case LMF_PLAN_BF16: return "bf16";
    case LMF_PLAN_FP8: return "fp8";
    case LMF_PLAN_FP16: return "fp16";
    default: return "?";
    }
}

const char *lmf_plan_device_kind_name(lmf_plan_device_kind k) {
    switch (k) {
    case LMF_PLAN_DEVICE_GENERIC: return "generic";
    case LMF_PLAN_DEVICE_CALIBRATED: return "calibrated";
    default: return "?";
    }
}

const char *lmf_plan_attention_name(lmf_plan_attention a) {
    switch (a) {
    case LMF_PLAN_ATTN_MATERIALIZED: return "materialized";
    case LMF_PLAN_ATTN_FLASH: return "flash";
    default: return "?";
    }
}

lmf_plan_attention lmf_plan_attention_parse(const char *s) {
    if (strcmp(s, "materialized") == 0) return LMF_PLAN_ATTN_MATERIALIZED;
    if (strcmp(s, "flash") == 0) return LMF_PLAN_ATTN_FLASH;
    return LMF_PLAN_ATTN_UNKNOWN;
}

lmf_plan_dtype lmf_plan_dtype_parse(const char *s) {
    for (int d = 0; d < LMF_PLAN_NDTYPES; d++)
        if (strcmp(s, lmf_plan_dtype_name((lmf_plan_dtype)d)) == 0) return (lmf_plan_dtype)d;
    return LMF_PLAN_DTYPE_UNKNOWN;
}

/* bytes per value (per parameter for AdamW and sumsq) each element-wise rate counts */
const double lmf_plan_ew_bytes[LMF_PLAN_EW_COUNT] = {
    8.0,  /* layernorm_forward: read x, write out */
    16.0, /* residual_layernorm_forward: read a, b; write res, out */
    16.0, /* layernorm_backward: read dout, x; read and write dinp */
    8.0,  /* gelu_forward: read, write */
    12.0, /* gelu_bias_backward: read inp, dout; write dinp */
    4.0,  /* zero: write */
    12.0, /* encoder_forward: read wte and wpe rows, write out */
    20.0, /* encoder_backward: read dout; read and write dwte, dwpe rows */
    32.0, /* adamw: read param, grad, m, v; write param, grad (zeroed), m, v */
    4.0,  /* sumsq: read */
};

const char *lmf_plan_ew_name(lmf_plan_ew e) {
    static const char *const names[LMF_PLAN_EW_COUNT] = {
        "layernorm_forward", "residual_layernorm_forward", "layernorm_backward", "gelu_forward",
        "gelu_bias_backward", "zero", "encoder_forward", "encoder_backward", "adamw", "sumsq"};
    return (int)e >= 0 && e < LMF_PLAN_EW_COUNT ? names[e] : "?";
}

lmf_plan_ew lmf_plan_ew_of_op(lmf_op op) {
    switch (op) {
    case LMF_OP_ENCODER_FORWARD: return LMF_PLAN_EW_ENCODER_FWD;
    case LMF_OP_ENCODER_BACKWARD: return LMF_PLAN_EW_ENCODER_BWD;
    case LMF_OP_LAYERNORM_FORWARD: return LMF_PLAN_EW_LAYERNORM_FWD;
    case LMF_OP_RESIDUAL_LAYERNORM_FORWARD: return LMF_PLAN_EW_RESIDUAL_LN_FWD;
    case LMF_OP_LAYERNORM_BACKWARD: return LMF_PLAN_EW_LAYERNORM_BWD;
    case LMF_OP_GELU_FORWARD: return LMF_PLAN_EW_GELU_FWD;
    case LMF_OP_GELU_BIAS_BACKWARD: return LMF_PLAN_EW_GELU_BIAS_BWD;
    case LMF_OP_ZERO: return LMF_PLAN_EW_ZERO;
    /* the Llama family's element-wise kernels, at the rate of the kernel of like traffic:
     * RMSNorm as LayerNorm; the SwiGLU, rotary embedding and residual adds (read two
     * streams, write one) as the GELU forward and the fused GELU backward */
    case LMF_OP_RMSNORM_FORWARD: return LMF_PLAN_EW_LAYERNORM_FWD;
    case LMF_OP_RMSNORM_BACKWARD: return LMF_PLAN_EW_LAYERNORM_BWD;
    case LMF_OP_ROPE: return LMF_PLAN_EW_GELU_FWD;
    case LMF_OP_SWIGLU_FORWARD: return LMF_PLAN_EW_GELU_BIAS_BWD;
    case LMF_OP_SWIGLU_BACKWARD: return LMF_PLAN_EW_GELU_BIAS_BWD;
    case LMF_OP_RESIDUAL: return LMF_PLAN_EW_GELU_BIAS_BWD;
    default: return LMF_PLAN_EW_COUNT;
    }
}

double lmf_plan_curve_at(const lmf_plan_rate_curve *cv, double x, lmf_plan_pass pass) {
    const double *y = pass == LMF_PLAN_BACKWARD ? cv->bwd : cv->fwd;
    if (cv->n <= 0) return 0.0;
    int last = cv->n - 1;
    if (x <= cv->x[0]) return y[0];
    if (x >= cv->x[last]) return y[last];
    int i = 0;
    while (i + 1 < last && x >= cv->x[i + 1]) i++;
    double f = (log2(x) - log2(cv->x[i])) / (log2(cv->x[i + 1]) - log2(cv->x[i]));
    return y[i] + f * (y[i + 1] - y[i]);
}

void lmf_plan_say(FILE *log, const char *fmt, ...) {
    if (!log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(log, fmt, ap);
    va_end(ap);
    fflush(log);
}
