#include "services/coordinator/bearer_auth.h"

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "core/error.h"

namespace tandem::services {

namespace {
std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}
}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  volatile unsigned char diff = (a.size() == b.size() && a.size() <= kMaxTokenBytes) ? 0 : 1;
  for (size_t i = 0; i < kMaxTokenBytes; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = diff | static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

BearerAuth::BearerAuth(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {}

BearerAuth BearerAuth::from_sources(const std::string& file, const char* env) {
  std::vector<std::string> tokens;
  if (!file.empty()) {
    std::ifstream in(file);
    if (!in) throw core::Error("--auth-token-file " + file + ": cannot read it");
    struct stat st{};
    if (::stat(file.c_str(), &st) == 0 && (st.st_mode & 0077))
      std::fprintf(stderr, "tandem-coordinator: warning: %s is readable by others (chmod 600 it)\n", file.c_str());
    std::string line;
    while (std::getline(in, line)) {
      const std::string t = trim(line);
      if (!t.empty() && t[0] != '#') tokens.push_back(t);
    }
    if (tokens.empty()) throw core::Error("--auth-token-file " + file + ": no token in it (one per line)");
  }
  if (const char* v = env ? std::getenv(env) : nullptr; v && *v) {
    std::string_view rest(v);
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      const std::string t = trim(rest.substr(0, comma));
      if (!t.empty()) tokens.push_back(t);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  for (const std::string& t : tokens)
    if (t.size() > kMaxTokenBytes)
      throw core::Error("a bearer token is " + std::to_string(t.size()) + " bytes; at most " +
                        std::to_string(kMaxTokenBytes) + " are allowed");
  return BearerAuth(std::move(tokens));
}

grpc::Status BearerAuth::check(const grpc::ServerContext& ctx) const {
  if (tokens_.empty()) return grpc::Status::OK;
  const auto& md = ctx.client_metadata();
  const auto it = md.find("authorization");
  if (it == md.end())
    return {grpc::StatusCode::UNAUTHENTICATED, "missing credentials: send the header 'authorization: Bearer <token>'"};
  const std::string_view value(it->second.data(), it->second.size());
  // The scheme name is case-insensitive (RFC 7235).
  constexpr std::string_view kScheme = "bearer ";
  bool scheme = value.size() > kScheme.size();
  for (size_t i = 0; scheme && i < kScheme.size(); ++i)
    scheme = std::tolower(static_cast<unsigned char>(value[i])) == kScheme[i];
  if (!scheme) return {grpc::StatusCode::UNAUTHENTICATED, "the authorization header is not 'Bearer <token>'"};
  const std::string_view presented = value.substr(kScheme.size());
  bool ok = false;
  for (const std::string& t : tokens_) ok = constant_time_equal(presented, t) || ok;  // no early exit
  if (!ok) return {grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token"};
  return grpc::Status::OK;
}

}  // namespace tandem::services
