/* Busy-time counters of the fast kernels' parallel regions: storage, switch and read-out. */
#include "kernels/busy.h"

lmf_busy_slot lmf_busy_slots[LMF_BUSY_SLOTS];
int lmf_busy_on;
double lmf_busy_wall_s;

void lmf_busy_enable(int on) { lmf_busy_on = on != 0; }

int lmf_busy_enabled(void) { return lmf_busy_on; }

void lmf_busy_read(double *busy_thread_s, double *region_wall_s) {
    double s = 0.0;
    for (int i = 0; i < LMF_BUSY_SLOTS; i++) s += lmf_busy_slots[i].busy_s;
    if (busy_thread_s) *busy_thread_s = s;
    if (region_wall_s) *region_wall_s = lmf_busy_wall_s;
}
