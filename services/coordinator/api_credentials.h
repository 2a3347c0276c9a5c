#pragma once
// Transport security of the public gRPC port: plaintext, TLS (server
// certificate and key), or mutual TLS (also a CA that client certificates
// must chain to; a client without one is refused in the handshake).
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

namespace tandem::services {

struct TlsOptions {
  std::string cert;       // PEM certificate chain of the server ("" : plaintext)
  std::string key;        // PEM private key of that certificate
  std::string client_ca;  // PEM CA bundle: require and verify client certificates ("" : no mTLS)
};

// Throws core::Error naming the option and file that is missing, unreadable
// or empty, or the option given without the one it needs.
std::shared_ptr<grpc::ServerCredentials> api_server_credentials(const TlsOptions& tls);

}  // namespace tandem::services
