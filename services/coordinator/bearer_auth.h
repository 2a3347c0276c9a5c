#pragma once
// Bearer-token authentication of the API (tandem.v1.Inference): a call must
// carry `authorization: Bearer <token>` with one of the configured tokens,
// else UNAUTHENTICATED. The health service stays open (orchestrators' probes
// carry no credentials). Tokens come from a file (one per line; blank lines
// and lines starting with # are skipped) and/or an environment variable
// (comma-separated). No token configured: authentication is off.
#include <grpcpp/grpcpp.h>

#include <string>
#include <string_view>
#include <vector>

namespace tandem::services {

// Longest token accepted (in the file, the environment and a request).
inline constexpr size_t kMaxTokenBytes = 256;

// Equal contents, in a time that depends on neither where the first
// difference is nor the lengths (both at most kMaxTokenBytes: always that
// many steps), so timing leaks no prefix and no length of a token.
bool constant_time_equal(std::string_view a, std::string_view b);

class BearerAuth {
 public:
  BearerAuth() = default;
  explicit BearerAuth(std::vector<std::string> tokens);
  // file: "" or a path (throws core::Error naming it when unreadable or
  // holding no token); env: the variable's name (unset or empty: none).
  static BearerAuth from_sources(const std::string& file, const char* env);

  bool enabled() const { return !tokens_.empty(); }
  size_t token_count() const { return tokens_.size(); }
  // OK, or UNAUTHENTICATED saying whether the header was missing or wrong.
  grpc::Status check(const grpc::ServerContext& ctx) const;

 private:
  std::vector<std::string> tokens_;
};

}  // namespace tandem::services
