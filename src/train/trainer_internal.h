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
    lmf_shard *train, *val;
    lmf_loader *loader, *val_loader;
    lmf_gpt *model;
    int32_t *inputs, *targets;
    lmf_lr_schedule sched;
    int step;           /* completed optimizer steps */
    int eval_batches;
    double flops_per_token;
};

lmf_status lmf_trainer_setup(lmf_trainer *t);

#endif
