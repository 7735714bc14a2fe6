/* The `ember` verbs, one file each (cmd_*.c). Each returns the process exit code. */
#pragma once

int cmd_run(int argc, char **argv);
void cmd_run_usage(void);
int cmd_restore(int argc, char **argv);
