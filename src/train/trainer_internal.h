/* The trainer's state, shared by the trainer and its checkpoint code (not public). */
#ifndef LMF_TRAINER_INTERNAL_H
#define LMF_TRAINER_INTERNAL_H

#include "lmforge/comm.h"
#include "lmforge/data.h"
#include "lmforge/ddp.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/optim.h"
#include "lmforge/train.h"

struct lmf_trainer {
    lmf_train_opts o;
    const lmf_kernels *k;
    lmf_comm *comm;
    lmf_ddp *ddp;
    int rank, world;
    int accum;          /* micro-batches per rank per step */
    lmf_tokens *train, *val;
    lmf_loader *loader, *val_loader;
    lmf_gpt *model;
    int32_t *inputs, *targets;
    lmf_lr_schedule sched;
    int step;           /* completed optimizer steps */
    int eval_batches;
    double flops_per_token;
    struct lmf_ckpt_writer *ckw; /* background checkpoint writer, made by the first save */
    /* numeric faults (trainer.c; saved by checkpoint.c) */
    int bad_in_row;             /* steps with a NaN/Inf loss or gradient norm in a row */
    int64_t skipped_total;      /* such steps in the whole run */
    int rollbacks;              /* rollbacks in the whole run */
    int stuck;                  /* 1: rolled back and no good step since */
    int64_t good_steps;         /* good steps so far (the running mean counts after 10) */
    double loss_ema;            /* running mean of the loss over good steps */
    int64_t *inject_nan;        /* test hook LMF_INJECT_NAN_STEPS: steps whose gradient is made
                                 * NaN (each once; used entries become -1) */
    int n_inject;
};

lmf_status lmf_trainer_setup(lmf_trainer *t);

#endif
