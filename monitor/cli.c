#include "monitor/cli.h"
#include "common/err.h"

#include <errno.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

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

static struct termios saved_tty;
static int tty_fd = -1;

/* Line editing and echo off so keys reach the guest as typed; ISIG stays on so Ctrl-C stops
 * the VM. */
void cli_console_enter(int fd)
{
	if (!isatty(fd) || tcgetattr(fd, &saved_tty) < 0)
		return;
	struct termios t = saved_tty;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &t) == 0)
		tty_fd = fd;
}

void cli_console_leave(void)
{
	if (tty_fd >= 0)
		tcsetattr(tty_fd, TCSANOW, &saved_tty);
	tty_fd = -1;
}
