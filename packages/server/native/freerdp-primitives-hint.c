/*
 * Preloaded into FreeRDP 3's xfreerdp3 by browser RDP (packages/server/src/desktop/freerdp.ts).
 *
 * At its first connection FreeRDP 3 picks its image primitives by running each backend for
 * 150 ms of wall time (primitives_autodetect_best: generic, then CPU-optimised) before it can
 * start: 300 ms on every session's path, and CPU taken from the others. On a gateway with no
 * GPU the CPU-optimised backend is what it picks; this sets that choice through FreeRDP's
 * public primitives_set_hints() before anything asks for the primitives, as FreeRDP's own
 * tests do. The symbol is weak, so the processes the library also loads into on the way
 * (setpriv, stdbuf) and a FreeRDP without it are left alone.
 */
extern void primitives_set_hints(int hints) __attribute__((weak));

/* primitive_hints in freerdp/primitives.h: PRIMITIVES_PURE_SOFT, PRIMITIVES_ONLY_CPU, ... */
#define PRIMITIVES_ONLY_CPU 1

__attribute__((constructor)) static void gatehouse_freerdp_primitives_hint(void)
{
	if (primitives_set_hints)
		primitives_set_hints(PRIMITIVES_ONLY_CPU);
}
