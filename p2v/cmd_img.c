/* Placeholder: the image commands land with the copy engine. */
#include "p2v.h"

int p2v_cmd_info(int argc, char **argv)
{
	(void)argc;
	p2v_err("%s: not implemented yet", argv[0]);
	return P2V_EXIT_ERROR;
}

int p2v_cmd_convert(int argc, char **argv)
{
	(void)argc;
	p2v_err("%s: not implemented yet", argv[0]);
	return P2V_EXIT_ERROR;
}

int p2v_cmd_create(int argc, char **argv)
{
	(void)argc;
	p2v_err("%s: not implemented yet", argv[0]);
	return P2V_EXIT_ERROR;
}

int p2v_cmd_compare(int argc, char **argv)
{
	(void)argc;
	p2v_err("%s: not implemented yet", argv[0]);
	return P2V_EXIT_ERROR;
}

int p2v_cmd_check(int argc, char **argv)
{
	(void)argc;
	p2v_err("%s: not implemented yet", argv[0]);
	return P2V_EXIT_ERROR;
}

int p2v_cmd_map(int argc, char **argv)
{
	(void)argc;
	p2v_err("%s: not implemented yet", argv[0]);
	return P2V_EXIT_ERROR;
}
