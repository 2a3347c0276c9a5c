#include "services/coordinator/api_credentials.h"

#include <grpcpp/security/server_credentials.h>

#include "core/error.h"
#include "core/read_file.h"

namespace tandem::services {

namespace {
std::string read_pem(const std::string& path, const char* option) {
  const std::string pem = core::read_whole_file(path, option);
  if (pem.find("-----BEGIN ") == std::string::npos)
    throw core::Error(std::string(option) + " " + path + ": not a PEM file (no -----BEGIN line)");
  return pem;
}
}  // namespace

std::shared_ptr<grpc::ServerCredentials> api_server_credentials(const TlsOptions& tls) {
  if (tls.cert.empty() != tls.key.empty())
    throw core::Error("--tls-cert and --tls-key go together (got only " +
                      std::string(tls.cert.empty() ? "--tls-key" : "--tls-cert") + ")");
  if (tls.cert.empty()) {
    if (!tls.client_ca.empty()) throw core::Error("--tls-client-ca needs --tls-cert and --tls-key (mTLS is TLS first)");
    return grpc::InsecureServerCredentials();
  }
  grpc::SslServerCredentialsOptions opt(tls.client_ca.empty()
                                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opt.pem_key_cert_pairs.push_back({read_pem(tls.key, "--tls-key"), read_pem(tls.cert, "--tls-cert")});
  if (!tls.client_ca.empty()) opt.pem_root_certs = read_pem(tls.client_ca, "--tls-client-ca");
  return grpc::SslServerCredentials(opt);
}

}  // namespace tandem::services
