/*
 * liburcu-bp as ThreadSanitizer can see it (make tsan only: the TSan build
 * force-includes this header with -include; no other build uses it).
 *
 * liburcu is not built with -fsanitize=thread, and without _LGPL_SOURCE its
 * primitives are calls into it: rcu_assign_pointer() stores the pointer
 * inside the library (TSan never sees the store), rcu_dereference() likewise
 * loads it there, and synchronize_rcu() waits for readers by polling their
 * counters with plain loads and memory barriers.  TSan therefore sees no
 * ordering between a writer filling a snapshot and a reader using it, nor
 * between a reader's critical section and the writer freeing the old
 * snapshot after the grace period, and reports both as races in our code.
 *
 * So that real races stay visible (no suppression covers our functions),
 * this build swaps in primitives with the same guarantees, expressed in a
 * way TSan understands:
 *  - rcu_assign_pointer: a C11 release store; rcu_dereference: an acquire
 *    load (what liburcu's store/load with barriers provide on every
 *    architecture we build for);
 *  - the grace period: every rcu_read_unlock() releases, and
 *    synchronize_rcu() acquires once it returns, on one synchronisation
 *    address.  That is the RCU guarantee (a read-side critical section that
 *    ended before the grace period ended happens before what follows it);
 *    it is slightly coarser than the real thing for a reader that both
 *    starts and ends during the grace period, which may hide a race
 *    involving such a reader, never report a false one.
 * The locking itself is still liburcu's: rcu_read_lock() and the grace
 * period wait are the library's own calls.
 */
#ifndef SWITCHBOARD_TESTS_URCU_TSAN_H
#define SWITCHBOARD_TESTS_URCU_TSAN_H

#include <sanitizer/tsan_interface.h>
#include <urcu-bp.h>

/* one address for the whole process: a weak definition in every object */
__attribute__((weak)) char sb_tsan_rcu_grace_period;

static inline void sb_tsan_rcu_read_unlock(void)
{
	__tsan_release(&sb_tsan_rcu_grace_period);
	urcu_bp_read_unlock();
}

static inline void sb_tsan_synchronize_rcu(void)
{
	urcu_bp_synchronize_rcu();
	__tsan_acquire(&sb_tsan_rcu_grace_period);
}

#undef rcu_read_unlock
#define rcu_read_unlock sb_tsan_rcu_read_unlock
#undef synchronize_rcu
#define synchronize_rcu sb_tsan_synchronize_rcu
#undef rcu_dereference
#define rcu_dereference(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#undef rcu_assign_pointer
#define rcu_assign_pointer(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

#endif
