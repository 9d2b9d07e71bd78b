/* Learning-rate schedules: linear warmup, then cosine decay or constant. */
#include <math.h>

#include "lmforge/optim.h"

float lmf_lr_at(const lmf_lr_schedule *s, int step) {
    if (s->warmup > 0 && step < s->warmup) return s->lr * (float)(step + 1) / (float)s->warmup;
    if (s->kind == LMF_LR_CONSTANT) return s->lr;
    int span = s->total - 1 - s->warmup;
    if (span <= 0) return s->lr;
    double frac = (double)(step - s->warmup) / (double)span;
    if (frac > 1.0) frac = 1.0;
    double coeff = 0.5 * (1.0 + cos(M_PI * frac));
    return (float)(s->min_lr + coeff * (s->lr - s->min_lr));
}
