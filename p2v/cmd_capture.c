/* Placeholder until this part lands. */
#include "p2v.h"

int p2v_cmd_capture(int argc, char **argv)
{
	(void)argc;
	p2v_err("%s: not implemented yet", argv[0]);
	return P2V_EXIT_ERROR;
}

int p2v_cmd_inspect(int argc, char **argv)
{
	(void)argc;
	p2v_err("%s: not implemented yet", argv[0]);
	return P2V_EXIT_ERROR;
}
