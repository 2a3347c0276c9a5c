#pragma once
// How `tandem client …` reaches a coordinator: address, TLS / mTLS files and
// the bearer token, shared by the one-shot commands and `client bench`.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

namespace tandem::cli {

struct ConnectionOptions {
  std::string addr = "127.0.0.1:50051";
  std::string tls_ca;                // PEM CA to verify the server with: TLS on ("" : plaintext, unless tls_cert)
  std::string tls_cert, tls_key;     // PEM client certificate and key (mTLS)
  std::string tls_server_name;       // name the server's certificate must carry (default: the host of addr)
  std::string token;                 // bearer token (default: $TANDEM_TOKEN)
};

// --addr, --tls-ca, --tls-cert, --tls-key, --tls-server-name, --token.
void add_connection_options(CLI::App& cmd, ConnectionOptions& c);
// Throws core::Error naming an unreadable file or --tls-cert without --tls-key.
// own_connection: a TCP connection of its own (gRPC otherwise shares one
// between channels to the same address), as separate callers would have.
std::shared_ptr<grpc::Channel> make_channel(const ConnectionOptions& c, bool own_connection = false);
// Every call: its deadline (seconds, 0: none) and, when there is one, the token.
void prepare_call(grpc::ClientContext& ctx, const ConnectionOptions& c, double timeout_s);

}  // namespace tandem::cli
