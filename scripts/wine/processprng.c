/*
 * bcryptprimitives.dll for Wine 8, which lacks it: Rust's standard library (1.78 and later)
 * takes its random bytes from ProcessPrng there, so every Rust program fails to load under
 * Wine 8 without this. It forwards to RtlGenRandom (advapi32's SystemFunction036), which
 * Wine has. Built by scripts/install-deps, installed into a prefix by scripts/wine-prefix;
 * only for running the Windows build under Wine, never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* ProcessPrng never fails on Windows; a failure here is reported all the same. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
