/* Planner device models: the table of each kind (generic, calibrated) and the choice of one
 * for a layout on a cluster, made once per evaluation. */
#include "plan/plan_model.h"

#include <string.h>

static const lmf_plan_device generic_device = {
    .kind = LMF_PLAN_DEVICE_GENERIC,
    .prepare = NULL,
    .memory = lmf_plan_generic_memory,
    .micro_batch = lmf_plan_generic_micro_batch,
    .optimizer = lmf_plan_generic_optimizer,
    .zero3_gathers = lmf_plan_generic_zero3_gathers,
    .explain = NULL,
    .itemizes_kernels = 0,
};

static const lmf_plan_device calibrated_device = {
    .kind = LMF_PLAN_DEVICE_CALIBRATED,
    .prepare = lmf_plan_local_prepare,
    .memory = lmf_plan_local_memory,
    .micro_batch = lmf_plan_local_micro_batch,
    .optimizer = lmf_plan_local_optimizer,
    .zero3_gathers = lmf_plan_local_zero3_gathers,
    .explain = lmf_plan_local_explain,
    .itemizes_kernels = 1,
};

const lmf_plan_device *lmf_plan_device_of_kind(lmf_plan_device_kind kind) {
    return kind == LMF_PLAN_DEVICE_CALIBRATED ? &calibrated_device : &generic_device;
}

const lmf_plan_device *lmf_plan_device_select(const lmf_cluster *c, const lmf_plan_layout *l) {
    int measured = c->kernels.matmul.n > 0;
    int lmforge_run = l->dtype == LMF_PLAN_FP32 && l->pp <= LMF_PLAN_LOCAL_MAX_STAGES &&
                      lmf_plan_virtual_stages(l) == 1 && lmf_plan_cp(l) == 1;
    return lmf_plan_device_of_kind(measured && lmforge_run ? LMF_PLAN_DEVICE_CALIBRATED
                                                           : LMF_PLAN_DEVICE_GENERIC);
}

lmf_status lmf_plan_setup_init(lmf_plan_setup *s, const lmf_cluster *c, const lmf_plan_job *job,
                               const lmf_plan_layout *l) {
    memset(s, 0, sizeof *s);
    s->cluster = c;
    s->job = job;
    s->layout = l;
    s->device = lmf_plan_device_select(c, l);
    return s->device->prepare ? s->device->prepare(s) : LMF_OK;
}
