/* Tensor-parallel engine: the collectives of a model split over a tensor-parallel group
 * (lmf_gpt_create_tp), the replicated tensors' gradients made whole over the group, and whole
 * vectors assembled from every rank's slices. */
#ifndef LMFORGE_TP_H
#define LMFORGE_TP_H

#include <stddef.h>
#include "lmforge/comm.h"
#include "lmforge/model.h"
#include "lmforge/partition.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_tp lmf_tp;

/* The engine for a model with layout (one rank's slices, lmf_layout_build_tp of cfg, or of one
 * pipeline stage, lmf_layout_build_stage) over the group's communicator (which must outlive
 * it; its size and rank are the layout's). Every rank of the group holds the same stage. */
lmf_status lmf_tp_create(lmf_comm *group, const lmf_gpt_config *cfg,
                         const lmf_param_layout *layout, lmf_tp **out);
void lmf_tp_free(lmf_tp *tp);

/* Set the model hooks' tp_collective and tp_ctx (the other hooks are left as they are). */
void lmf_tp_hooks(lmf_tp *tp, lmf_gpt_hooks *h);

/* Collective over the group, after the data-parallel reduction and before the optimizer step:
 * the gradients of the tensors (parts of them) inside range, grads pointing at its first
 * element, made whole: averaged over the group for replicated tensors, summed over the ranks
 * sharing them for partial ones (lmf_tp_reduce). Every rank of the group passes the same
 * range. */
lmf_status lmf_tp_reduce_grads(lmf_tp *tp, float *grads, lmf_range range);

/* Collective over the group: the floats of the whole model's vector inside range,
 * out[lmf_range_len(range)] (ranges may differ between the ranks), from each rank's slices
 * part[layout total]. Holds every rank's slices (about one whole vector, or one stage's) while
 * it runs. For a pipeline stage only its tensors are written; out's other floats are left. */
lmf_status lmf_tp_gather_range(lmf_tp *tp, const float *part, lmf_range range, float *out);

/* The unsplit layout of the model (for checkpoints and exports). */
const lmf_param_layout *lmf_tp_whole_layout(const lmf_tp *tp);

/* Seconds this rank spent in the group's collectives since the engine was made (the model's
 * collectives and the gradient reduction), and how many there were. */
typedef struct lmf_tp_stats {
    double seconds;
    long calls;
} lmf_tp_stats;
void lmf_tp_stats_get(const lmf_tp *tp, lmf_tp_stats *out);

#ifdef __cplusplus
}
#endif
#endif
