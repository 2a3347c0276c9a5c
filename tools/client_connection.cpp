#include "tools/client_connection.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "core/read_file.h"

namespace tandem::cli {


void add_connection_options(CLI::App& cmd, ConnectionOptions& c) {
  cmd.add_option("--addr", c.addr, "coordinator address HOST:PORT");
  cmd.add_option("--tls-ca", c.tls_ca, "PEM CA that signed the server's certificate: connect with TLS");
  cmd.add_option("--tls-cert", c.tls_cert, "PEM client certificate (mutual TLS; with --tls-key)");
  cmd.add_option("--tls-key", c.tls_key, "PEM private key of --tls-cert");
  cmd.add_option("--tls-server-name", c.tls_server_name, "name to expect in the server's certificate (default: --addr's host)");
  cmd.add_option("--token", c.token, "bearer token sent as 'authorization: Bearer ...' (default: $TANDEM_TOKEN)");
}

std::shared_ptr<grpc::Channel> make_channel(const ConnectionOptions& c, bool own_connection) {
  grpc::ChannelArguments args;
  if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (c.tls_cert.empty() != c.tls_key.empty()) throw core::Error("--tls-cert and --tls-key go together");
  if (c.tls_ca.empty() && c.tls_cert.empty()) {
    const char* env = std::getenv("TANDEM_TOKEN");
    if (!c.token.empty() || (env && *env))
      std::fprintf(stderr, "tandem: warning: sending a bearer token over plaintext to %s (use --tls-ca)\n", c.addr.c_str());
    return grpc::CreateCustomChannel(c.addr, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  if (!c.tls_ca.empty()) ssl.pem_root_certs = core::read_whole_file(c.tls_ca, "--tls-ca");  // else the system's roots
  if (!c.tls_cert.empty()) {
    ssl.pem_cert_chain = core::read_whole_file(c.tls_cert, "--tls-cert");
    ssl.pem_private_key = core::read_whole_file(c.tls_key, "--tls-key");
  }
  if (!c.tls_server_name.empty()) args.SetSslTargetNameOverride(c.tls_server_name);
  return grpc::CreateCustomChannel(c.addr, grpc::SslCredentials(ssl), args);
}

void prepare_call(grpc::ClientContext& ctx, const ConnectionOptions& c, double timeout_s) {
  if (timeout_s > 0)
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
  const char* env = std::getenv("TANDEM_TOKEN");
  const std::string token = !c.token.empty() ? c.token : (env ? env : "");
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
}

}  // namespace tandem::cli
