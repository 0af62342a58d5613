/* mbxd.c — the mailbox database node's main(): command line, configuration, logging,
 * then the node on a libuv loop until SIGTERM/SIGINT. Also --hash-password, which
 * makes the scrypt hashes the configuration file takes. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "log.h"
#include "mbx_error.h"
#include "node.h"
#include "nodeconf.h"
#include "passwd.h"

static void usage(FILE *f)
{
  fprintf(f,
          "usage: mbxd --config FILE            run the node\n"
          "       mbxd --check-config --config FILE\n"
          "                                     validate FILE and exit (0 good, 2 bad)\n"
          "       mbxd --hash-password          print the scrypt hash of the password in\n"
          "                                     $MBX_PASSWORD (else one line of stdin)\n"
          "       mbxd --version | --help\n"
          "Every configuration key is documented in deploy/mbxd.conf.example.\n");
}

static int hash_password(void)
{
  char line[1100];
  const char *pw = getenv("MBX_PASSWORD");
  if (!pw) {
    if (!fgets(line, sizeof(line), stdin)) {
      fprintf(stderr, "mbxd: no password: set MBX_PASSWORD or give one line on stdin\n");
      return 2;
    }
    line[strcspn(line, "\r\n")] = '\0';
    pw = line;
  }
  char hash[256];
  int rc = mbx_passwd_hash(pw, hash, sizeof(hash));
  if (rc == MBX_EINVAL) {
    fprintf(stderr, "mbxd: the password must be 1 to 1024 bytes\n");
    return 2;
  }
  if (rc < 0) {
    fprintf(stderr, "mbxd: cannot hash the password: %s\n", mbx_strerror(rc));
    return 1;
  }
  printf("%s\n", hash);
  return 0;
}

static int run_node(const struct mbx_nodeconf *conf)
{
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    fprintf(stderr, "mbxd: cannot create the event loop\n");
    return 1;
  }
  struct mbx_node *node = NULL;
  char err[512];
  if (mbx_node_start(&loop, conf, &node, err, sizeof(err)) < 0) {
    mbx_error("cannot start: %s", err);
    fprintf(stderr, "mbxd: %s\n", err);
    uv_loop_close(&loop);
    return 1;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  mbx_node_free(&node);
  if (uv_loop_close(&loop) != 0)
    mbx_warning("event loop closed with handles still open");
  return 0;
}

int main(int argc, char **argv)
{
  const char *config = NULL;
  bool check = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config = argv[++i];
    } else if (strncmp(argv[i], "--config=", 9) == 0) {
      config = argv[i] + 9;
    } else if (strcmp(argv[i], "--check-config") == 0) {
      check = true;
    } else if (strcmp(argv[i], "--hash-password") == 0) {
      return hash_password();
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("mbxd %s (protocol %d)\n", MBX_VERSION, MBX_PROTOCOL_VERSION);
      return 0;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "mbxd: unknown argument '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  if (!config) {
    fprintf(stderr, "mbxd: --config FILE is required (try --help)\n");
    return 2;
  }
  struct mbx_nodeconf *conf = NULL;
  char err[512];
  if (mbx_nodeconf_load(config, &conf, err, sizeof(err)) < 0) {
    fprintf(stderr, "mbxd: %s\n", err);
    return 2;
  }
  if (check) {
    printf("mbxd: %s: configuration is valid\n", config);
    mbx_nodeconf_free(&conf);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  mbx_log_init("mbxd", conf->node_name, conf->log_level);
  int rc = run_node(conf);
  mbx_nodeconf_free(&conf);
  return rc;
}
