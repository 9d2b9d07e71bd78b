/* The trainer's state, shared by its set-up and steps (trainer.c) and its whole model and
 * checkpoints (trainer_ckpt.c); internal to src/train. */
#ifndef LMF_TRAINER_INTERNAL_H
#define LMF_TRAINER_INTERNAL_H

#include "lmforge/ckpt.h"
#include "lmforge/comm.h"
#include "lmforge/data.h"
#include "lmforge/ddp.h"
#include "lmforge/model.h"
#include "lmforge/optim.h"
#include "lmforge/perf.h"
#include "lmforge/pipeline.h"
#include "lmforge/tp.h"
#include "lmforge/train.h"

struct lmf_trainer {
    lmf_train_opts o;
    const lmf_kernels *k;
    lmf_comm *comm;
    lmf_comm *tp_comm, *dp_comm; /* the tensor- and data-parallel groups (without tensor
                                  * parallelism: NULL and the world) */
    lmf_tp *tp;                  /* the tensor-parallel engine, or NULL */
    lmf_comm *pp_comm;           /* the pipeline group (NULL without pipeline parallelism) */
    lmf_pp_engine *pp;           /* the pipeline engine, or NULL */
    lmf_param_layout pp_whole;   /* the whole model's layout (pipeline: checkpoints) */
    int pp_size, pp_rank, layer0, layers; /* the stage and its layers */
    int *stage_l0;               /* [pp_size * V + 1]: virtual stage v (chunk v / pp_size of
                                  * stage v % pp_size) holds [stage_l0[v], stage_l0[v+1]) */
    lmf_train_memory *stage_mem; /* [pp_size]: what the first rank of each stage holds */
    lmf_ddp *ddp;
    lmf_optimizer *opt;
    int rank, world;
    int tp_size, tp_rank, dp_size, dp_rank; /* rank = (pp_rank * dp_size + dp_rank) * tp_size
                                             * + tp_rank */
    int accum;          /* micro-batches per rank per step */
    lmf_dataset *train, *val;
    lmf_loader *loader, *val_loader;
    lmf_gpt *model;              /* the rank's model: the whole, its slices, its stage */
    lmf_gpt *chunks[LMF_LAYOUT_MAX_RANGES]; /* [n_chunks]: chunks[0] is model; the others run
                                             * an interleaved stage's later model chunks */
    int n_chunks;
    int32_t *inputs, *targets;
    int32_t *val_inputs, *val_targets; /* pipeline: every validation batch, [eval_batches][B*T] */
    lmf_lr_schedule sched;
    int step;           /* completed optimizer steps */
    int eval_batches;
    double flops_per_token, peak_flops;
    lmf_peak peak;             /* this rank's peak and where it came from */
    lmf_ckpt_writer *ckw;      /* background checkpoint writer, made by the first save */
    lmf_fault_counters faults; /* numeric faults, carried in checkpoints */
    int64_t *inject_nan;       /* test: steps whose gradient is made NaN (used entries: -1) */
    int (*stop_check)(void *);  /* polled between micro-steps */
    void *stop_ctx;
    int stop_value;             /* what stopped the last interrupted step (agreed) */
    char run_id[LMF_RUN_ID_LEN + 1]; /* "" until a resume adopts its checkpoint's */
};

/* Free the model chunks beyond chunks[0] (before the model they share). */
void lmf_trainer_free_chunks(lmf_trainer *t);

#endif
