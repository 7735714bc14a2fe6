#include "monitor/cli.h"
#include "common/err.h"

#include <errno.h>
#include <stdlib.h>

int cli_parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-' || *s == '+')
		return err_set(EINVAL, "%s: '%s' is not a number", flag, s ? s : "");
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end)
		return err_set(EINVAL, "%s: '%s' is not a number", flag, s);
	if (v < min || v > max)
		return err_set(ERANGE, "%s: %llu is out of range (%llu to %llu)", flag, v,
			       (unsigned long long)min, (unsigned long long)max);
	*out = v;
	return 0;
}
