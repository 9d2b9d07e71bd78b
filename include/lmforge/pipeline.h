/* Pipeline parallelism: the schedules (the ordered actions of every stage), their simulation,
 * and the engine that runs them over model stages and point-to-point messages. */
#ifndef LMFORGE_PIPELINE_H
#define LMFORGE_PIPELINE_H

#include "lmforge/comm.h"
#include "lmforge/model.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the micro-batches of one step go through P stages (docs/distributed.md, "Pipeline
 * schedules"). 1F1B is the zero value: the schedule wherever none is named.
 *   LMF_PP_1F1B         warm-up of P-s-1 forwards on stage s, then one forward and one
 *                       backward in turn, then the remaining backwards: at most P micro-batches
 *                       in flight (Narayanan et al. 2021, Sec. 2.2).
 *   LMF_PP_GPIPE        every forward, then every backward (Huang et al. 2019): M in flight.
 *   LMF_PP_INTERLEAVED  1F1B over V model chunks per stage (virtual stage c*P + s on stage s),
 *                       micro-batches in groups of P; M a multiple of P when V > 1
 *                       (Narayanan et al. 2021, Sec. 2.2.2). With V = 1 it is 1F1B.
 *   LMF_PP_ZB_H1        1F1B whose backward is split into its input-gradient half (B) and its
 *                       weight-gradient half (W); W waits in the bubbles, no stage holding more
 *                       than P micro-batches (Qi et al., "Zero Bubble Pipeline Parallelism",
 *                       ICLR 2024, schedule ZB-H1). */
typedef enum lmf_pp_schedule {
    LMF_PP_1F1B = 0,
    LMF_PP_GPIPE,
    LMF_PP_INTERLEAVED,
    LMF_PP_ZB_H1,
    LMF_PP_NSCHEDULES
} lmf_pp_schedule;

/* What one action computes for one (micro-batch, model chunk) on one stage. */
typedef enum lmf_pp_op {
    LMF_PP_FORWARD = 0,
    LMF_PP_BACKWARD,          /* the whole backward (every schedule but ZB-H1) */
    LMF_PP_BACKWARD_INPUT,    /* ZB-H1: the gradient of the chunk's input, sent to the stage before */
    LMF_PP_BACKWARD_WEIGHT    /* ZB-H1: the gradient of the chunk's weights (stays on the stage) */
} lmf_pp_op;

typedef struct lmf_pp_action {
    lmf_pp_op op;
    int mb;      /* micro-batch, 0..M-1 */
    int chunk;   /* model chunk on this stage, 0..V-1 (virtual stage chunk * P + stage) */
} lmf_pp_action;

typedef struct lmf_pp_shape {
    lmf_pp_schedule schedule;
    int stages;          /* P >= 1 */
    int micro_batches;   /* M >= 1 per step */
    int virtual_stages;  /* V >= 1 model chunks per stage; V > 1 only for LMF_PP_INTERLEAVED */
} lmf_pp_shape;

/* An action another one waits for: the stage that runs it, and the action. */
typedef struct lmf_pp_dep {
    int stage;
    lmf_pp_action action;
} lmf_pp_dep;

/* "gpipe", "1f1b", "interleaved", "zb" (NULL for a value outside the enum). */
const char *lmf_pp_schedule_name(lmf_pp_schedule s);
/* The schedule named `name`; fails with LMF_ERR_ARG listing the names. */
lmf_status lmf_pp_schedule_parse(const char *name, lmf_pp_schedule *out);
/* Schedules named in a comma list ("1f1b,zb") as a bitmask of 1 << lmf_pp_schedule. */
lmf_status lmf_pp_schedule_parse_list(const char *list, unsigned *mask);
/* Whether the schedule can run the shape; fails with LMF_ERR_ARG saying what to change. */
lmf_status lmf_pp_shape_check(const lmf_pp_shape *sh);
/* Actions every stage executes per step: 2*M*V, or 3*M*V with ZB-H1's split backward. */
int lmf_pp_stage_actions(const lmf_pp_shape *sh);
/* The ordered actions of `stage` into out[lmf_pp_stage_actions(sh)]; each (mb, chunk)'s
 * forward and backward (ZB-H1: input and weight halves) appear exactly once. Fails like
 * lmf_pp_shape_check, or with LMF_ERR_ARG for a stage outside 0..P-1; LMF_ERR_NOMEM. */
lmf_status lmf_pp_schedule_actions(const lmf_pp_shape *sh, int stage, lmf_pp_action *out);
/* The actions `a` on `stage` waits for, into out[2]; returns how many (0..2). Sends and
 * receives are implied: a dependency on another stage is a message.
 *   forward (mb, c) on s:  the forward of mb on the previous virtual stage (received activation)
 *   backward (mb, c):      its own forward, and the next virtual stage's backward of mb
 *                          (ZB-H1: the input half) (received gradient)
 *   weight half (mb, c):   its own input half. */
int lmf_pp_action_deps(const lmf_pp_shape *sh, int stage, const lmf_pp_action *a,
                       lmf_pp_dep out[2]);

/* Seconds of one action of one model chunk, and of one message between two stages. */
typedef struct lmf_pp_costs {
    double forward;
    double backward;   /* the whole backward; ZB-H1: the input-gradient half */
    double weight;     /* ZB-H1: the weight-gradient half (unused by the other schedules) */
    double p2p;        /* one activation or gradient from one stage to another */
} lmf_pp_costs;

/* Start and end of one action in a simulation. */
typedef struct lmf_pp_timing {
    double start, end;
} lmf_pp_timing;

/* One stage in a simulation. */
typedef struct lmf_pp_stage_result {
    double busy;           /* seconds computing */
    double idle;           /* fraction of the makespan not computing: the stage's bubble */
    int peak_inflight;     /* most (mb, chunk) activations held at once: counted from a
                              forward until its backward (ZB-H1: its weight half) is done */
} lmf_pp_stage_result;

typedef struct lmf_pp_summary {
    double makespan;       /* from the first action's start to the last one's end */
    double idle_max;       /* largest idle fraction of a stage */
    double idle_first;     /* stage 0's */
    int peak_max;          /* largest peak_inflight of a stage */
    int peak_first;        /* stage 0's */
} lmf_pp_summary;

/* Run every stage's action list as a discrete-event simulation: an action starts when its
 * stage has finished the one before it and every dependency has ended (plus costs->p2p when
 * that dependency ran on another stage). stages[P] and timing[P * lmf_pp_stage_actions] (in
 * each stage's action order, stage after stage) are filled when not NULL. Fails like
 * lmf_pp_shape_check, for negative or non-finite costs, or with LMF_ERR_NOMEM. */
lmf_status lmf_pp_simulate(const lmf_pp_shape *sh, const lmf_pp_costs *costs,
                           lmf_pp_stage_result *stages, lmf_pp_timing *timing,
                           lmf_pp_summary *out);

/* Most (mb, chunk) activations `stage` holds at once under the schedule (as in
 * lmf_pp_stage_result; its action order alone decides it). Fails like lmf_pp_schedule_actions. */
lmf_status lmf_pp_peak_inflight(const lmf_pp_shape *sh, int stage, int *peak);

/* Micro-batches past which a schedule's fill and drain and its peak activations no longer
 * change when stages cost the same and messages take no time (costs->p2p = 0): each one more
 * only adds its compute to every stage
 * (tests/test_pipeline_schedule.c checks it). Planning for M micro-batches may simulate
 * min(M, this) and add the rest. INT_MAX for GPipe, whose activations grow with M. */
int lmf_pp_steady_micro_batches(lmf_pp_schedule s, int stages, int virtual_stages);

/* ==== the engine (src/parallel/pipeline.c) ==== */

/* Layers of each of n model chunks (virtual stages) for a model of L layers: split[0..n-1]
 * when given (n values, each >= 1, summing to L), else L / n each with the remainder one more
 * on the first chunks. LMF_ERR_ARG naming what is wrong: more chunks than layers, a split of
 * the wrong sum or with an empty chunk. */
lmf_status lmf_pp_layers(int L, int n, const int *split, int *layers);
/* The default split of L layers over n stages when the ends cost more: the first stage's extra
 * work (the embeddings) is `first` layers' worth, the last stage's (the final norm and the
 * classifier) `last` layers' worth. Each stage gets at least one layer and the costliest stage
 * (layers plus its extra) as little as can be; among such splits the surplus goes to the
 * earlier stages, so with no extra work it is lmf_pp_layers' even split. LMF_ERR_ARG when
 * n > L or n < 1, or an extra is negative or not finite. */
lmf_status lmf_pp_layers_balanced(int L, int n, double first, double last, int *layers);

/* One rank's part of a pipeline: its stage's model chunks, run through the actions of
 * lmf_pp_schedule_actions (the planner's schedule code) with non-blocking sends and receives of
 * the residual stream between stages. */
typedef struct lmf_pp_engine lmf_pp_engine;

/* What one step measured on this rank. */
typedef struct lmf_pp_step_stats {
    double seconds;   /* the step's forwards and backwards, messages included */
    double busy;      /* of those, seconds computing */
    double bubble;    /* 1 - busy / seconds: the stage's idle fraction */
} lmf_pp_step_stats;

/* Collective over comm (the pipeline group: its rank is this rank's stage, P its size):
 * chunks[V] are this stage's model chunks, chunk c the virtual stage c * P + stage
 * (lmf_gpt_create_stage with the layers of lmf_pp_layers), of the same configuration and
 * tensor-parallel split on every stage. The engine reserves their activations for batches of
 * B x T (one slot per micro-batch the schedule keeps in flight) and their gradient blocks
 * (mode LMF_RESERVE_TRAIN or, with a data-parallel engine's hooks, LMF_RESERVE_TRAIN_HOOKED).
 * LMF_ERR_ARG when the shape does not fit (lmf_pp_shape_check, P the group's size) and for
 * V > 1 on a single stage. ZB-H1 runs each backward as its two halves
 * (lmf_gpt_stage_backward_input, then lmf_gpt_stage_backward_weights where the schedule
 * puts it); the slot stays taken until the weight half. */
lmf_status lmf_pp_engine_create(lmf_comm *comm, const lmf_pp_shape *sh, lmf_gpt *const *chunks,
                                int B, int T, lmf_reserve_mode mode, lmf_pp_engine **out);
/* Also detaches the engine from its chunks' kernel progress (lmf_gpt_set_progress): free it
 * before the chunks. */
void lmf_pp_engine_free(lmf_pp_engine *e);
/* One step: the forwards and backwards of the M micro-batches in the schedule's order.
 * inputs[M][B*T] are read by stage 0 and targets[M][B*T] by the last stage (NULL elsewhere);
 * gradients accumulate into the chunks' gradient blocks, each micro-batch's scaled by
 * dloss_scale (1/M: the mean over the step). The stages holding block 0 (the embeddings on the
 * first, the classifier on the last; GPT-2 ties them) then sum its gradient, so both copies
 * get the same update. *loss: the mean of the micro-batches' losses on the last stage, 0 on
 * the others. */
lmf_status lmf_pp_engine_step(lmf_pp_engine *e, const int32_t *inputs, const int32_t *targets,
                              float dloss_scale, float *loss, lmf_pp_step_stats *stats);

/* Collective over the pipeline group: the evaluation loss of n_micro micro-batches of B x T,
 * forward only (lmf_gpt_stage_eval: no gradient, no backward, the weights untouched). The
 * micro-batches go through the stages in groups of up to M (the step's micro-batches, whose
 * message buffers and tags they use), each stage's chunk c running them in order and sending
 * its output on without blocking, with the communicator's time-out and failure policy.
 * inputs[n_micro][B*T] are read by stage 0 and targets[n_micro][B*T] by the last stage (NULL
 * elsewhere). *loss on every stage: the mean of the micro-batches' losses, summed in double
 * in micro-batch order (as a whole model's evaluation loop sums lmf_gpt_forward's losses).
 * Call it between steps, never inside one. LMF_ERR_ARG for n_micro < 1. */
lmf_status lmf_pp_engine_eval(lmf_pp_engine *e, const int32_t *inputs, const int32_t *targets,
                              int n_micro, float *loss);

/* With a data-parallel engine placing the gradients (LMF_RESERVE_TRAIN_HOOKED):
 * before_backward(ctx, chunk, index, M) runs before the chunk's index-th backward (ZB-H1: its
 * index-th weight half, which hands the gradients over) of a step
 * (0..M-1; lmf_ddp_begin_micro(index, M)), and lmf_pp_engine_wrap_hooks interposes on chunk
 * c's model hooks h so that block 0's gradient is summed between the first and last stage
 * just before it is handed on (grads_ready(0)): in the chunk's last backward of the step, or
 * in every one when `every` (ZeRO 2 and 3 reduce each micro-batch). Call it before
 * lmf_gpt_set_hooks(chunks[c], h); the engine must outlive the model's use of h. */
void lmf_pp_engine_set_backward_hook(lmf_pp_engine *e,
                                     lmf_status (*before_backward)(void *ctx, int chunk,
                                                                   int index, int n),
                                     void *ctx);
void lmf_pp_engine_wrap_hooks(lmf_pp_engine *e, int chunk, lmf_gpt_hooks *h, int every);

#ifdef __cplusplus
}
#endif

#endif
