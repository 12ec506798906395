/* fuzz_calendar: the working-day calendar loader (schemas/calendar/, replaceable without
 * a rebuild) under libFuzzer. Any bytes: a calendar or an error, never a crash; a loaded
 * calendar answers add/between consistently. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "workday.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512] = "";
    workday_t *cal = workday_parse((const char *)data, size, "fuzz", err, sizeof err);
    if (!cal && err[0] == '\0')
        abort();
    if (cal) {
        date_t start = date_from_ymd(2019, 9, 27), end;
        bool unc;
        for (int n = -10; n <= 10; n += 5) {
            if (workday_add(cal, start, n, &end, &unc) == 0) {
                int back;
                if (workday_between(cal, start, end, &back, &unc) == 0 && back != n)
                    abort();
            }
        }
    }
    workday_destroy(&cal);
    return 0;
}
