/* Kernel tables: the reference backend, the fast backend, and lookup by name. */
#include "lmforge/kernels.h"

#include <string.h>

#include "kernels/fast/fast.h"
#include "kernels/ref.h"

static const lmf_kernels ref_table = {
    .name = "ref",
    .encoder_forward = lmf_ref_encoder_forward,
    .encoder_backward = lmf_ref_encoder_backward,
    .layernorm_forward = lmf_ref_layernorm_forward,
    .layernorm_backward = lmf_ref_layernorm_backward,
    .residual_layernorm_forward = lmf_ref_residual_layernorm_forward,
    .matmul_forward = lmf_ref_matmul_forward,
    .matmul_backward = lmf_ref_matmul_backward,
    .attention_saved_floats = lmf_ref_attention_saved_floats,
    .attention_scratch_floats = lmf_ref_attention_scratch_floats,
    .attention_forward = lmf_ref_attention_forward,
    .attention_backward = lmf_ref_attention_backward,
    .attention_kv_scratch_floats = lmf_ref_attention_kv_scratch_floats,
    .attention_kv_forward = lmf_ref_attention_kv_forward,
    .gelu_forward = lmf_ref_gelu_forward,
    .gelu_backward = lmf_ref_gelu_backward,
    .matmul_gelu_forward = lmf_ref_matmul_gelu_forward,
    .gelu_bias_backward = lmf_ref_gelu_bias_backward,
    .residual_forward = lmf_ref_residual_forward,
    .classifier_scratch_floats = lmf_ref_classifier_scratch_floats,
    .classifier = lmf_ref_classifier,
    .logits_forward = lmf_ref_logits_forward,
    .encoder_vp_forward = lmf_ref_encoder_vp_forward,
    .encoder_vp_backward = lmf_ref_encoder_vp_backward,
    .classifier_vp_scratch_floats = lmf_ref_classifier_vp_scratch_floats,
    .classifier_vp_stats = lmf_ref_classifier_vp_stats,
    .classifier_vp_backward = lmf_ref_classifier_vp_backward,
    .adamw = lmf_ref_adamw,
    .sumsq = lmf_ref_sumsq,
    .rmsnorm_forward = lmf_ref_rmsnorm_forward,
    .rmsnorm_backward = lmf_ref_rmsnorm_backward,
    .rope_forward = lmf_ref_rope_forward,
    .rope_backward = lmf_ref_rope_backward,
    .swiglu_forward = lmf_ref_swiglu_forward,
    .swiglu_backward = lmf_ref_swiglu_backward,
    .gqa_attention_forward = lmf_ref_gqa_attention_forward,
    .gqa_attention_scratch_floats = lmf_ref_gqa_attention_scratch_floats,
    .gqa_attention_backward = lmf_ref_gqa_attention_backward,
    .gqa_attention_kv_forward = lmf_ref_gqa_attention_kv_forward,
};

const lmf_kernels *lmf_kernels_ref(void) { return &ref_table; }

static const lmf_kernels fast_table = {
    .name = "fast",
    .encoder_forward = lmf_fast_encoder_forward,
    .encoder_backward = lmf_fast_encoder_backward,
    .layernorm_forward = lmf_fast_layernorm_forward,
    .layernorm_backward = lmf_fast_layernorm_backward,
    .residual_layernorm_forward = lmf_fast_residual_layernorm_forward,
    .matmul_forward = lmf_fast_matmul_forward,
    .matmul_backward = lmf_fast_matmul_backward,
    .attention_saved_floats = lmf_fast_attention_saved_floats,
    .attention_scratch_floats = lmf_fast_attention_scratch_floats,
    .attention_forward = lmf_fast_attention_forward,
    .attention_backward = lmf_fast_attention_backward,
    .attention_kv_scratch_floats = lmf_fast_attention_kv_scratch_floats,
    .attention_kv_forward = lmf_fast_attention_kv_forward,
    .gelu_forward = lmf_fast_gelu_forward,
    .gelu_backward = lmf_fast_gelu_backward,
    .matmul_gelu_forward = lmf_fast_matmul_gelu_forward,
    .gelu_bias_backward = lmf_fast_gelu_bias_backward,
    .residual_forward = lmf_fast_residual_forward,
    .classifier_scratch_floats = lmf_fast_classifier_scratch_floats,
    .classifier = lmf_fast_classifier,
    .logits_forward = lmf_fast_logits_forward,
    .encoder_vp_forward = lmf_fast_encoder_vp_forward,
    .encoder_vp_backward = lmf_fast_encoder_vp_backward,
    .classifier_vp_scratch_floats = lmf_fast_classifier_vp_scratch_floats,
    .classifier_vp_stats = lmf_fast_classifier_vp_stats,
    .classifier_vp_backward = lmf_fast_classifier_vp_backward,
    .adamw = lmf_fast_adamw,
    .sumsq = lmf_fast_sumsq,
    .rmsnorm_forward = lmf_fast_rmsnorm_forward,
    .rmsnorm_backward = lmf_fast_rmsnorm_backward,
    .rope_forward = lmf_fast_rope_forward,
    .rope_backward = lmf_fast_rope_backward,
    .swiglu_forward = lmf_fast_swiglu_forward,
    .swiglu_backward = lmf_fast_swiglu_backward,
    .gqa_attention_forward = lmf_fast_gqa_attention_forward,
    .gqa_attention_scratch_floats = lmf_fast_gqa_attention_scratch_floats,
    .gqa_attention_backward = lmf_fast_gqa_attention_backward,
    .gqa_attention_kv_forward = lmf_fast_gqa_attention_kv_forward,
};

const lmf_kernels *lmf_kernels_fast(void) { return &fast_table; }

const lmf_kernels *lmf_kernels_by_name(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "ref") == 0) return lmf_kernels_ref();
    if (strcmp(name, "fast") == 0) return lmf_kernels_fast();
    return NULL;
}
