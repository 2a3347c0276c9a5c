// The public API's request checks (services/coordinator/request_validation),
// without a server: what the fuzzer (tests/fuzz/fuzz_requests.cpp) drives,
// and the regressions it found.
#include <gtest/gtest.h>

#include "core/gguf_file.h"
#include "services/coordinator/request_validation.h"
#include "tests/unit/test_support.h"

namespace tandem::services {
namespace {

namespace pb = tandem::v1;

struct Model {
  std::unique_ptr<core::gguf::File> file;
  std::unique_ptr<core::Tokenizer> tok;
  std::string chat_template;
};

Model load(const std::string& path) {
  Model m;
  m.file = core::gguf::File::open(path);
  m.tok = std::make_unique<core::Tokenizer>(core::vocab_from_gguf(*m.file));
  m.chat_template = m.file->get_string("tokenizer.chat_template").value_or("");
  return m;
}

// Found by fuzz_requests: a role with a newline came back verbatim, and the
// status message spanned lines. Caller strings are now quoted and escaped.
TEST(RequestValidation, CallerStringsInMessagesAreQuotedOnOneLine) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(path);
  const Model m = load(path);
  pb::ChatRequest req;
  auto* msg = req.add_messages();
  msg->set_role("sys\ntem\x01");
  msg->set_content("hi");
  std::vector<int32_t> ids;
  grpc::Status s = chat_prompt(req, *m.tok, m.chat_template, ids);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().find('\n'), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("messages[0].role"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("'sys\\ntem\\x01'"), std::string::npos) << s.error_message();

  msg->set_role("user");
  req.set_chat_template(std::string(100, 'x') + "\n");
  s = chat_prompt(req, *m.tok, m.chat_template, ids);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().find('\n'), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("'..."), std::string::npos) << "cut to 64 bytes: " << s.error_message();
}

TEST(RequestValidation, AcceptedRequestsAreInsideTheLimits) {
  TANDEM_REQUIRE_MODEL_OR_SKIP(path);
  const Model m = load(path);
  const RequestLimits lim{8, 32, 2, 8};
  pb::ChatRequest req;
  auto* msg = req.add_messages();
  msg->set_role("user");
  msg->set_content("Hello");
  std::vector<int32_t> ids;
  ASSERT_TRUE(chat_prompt(req, *m.tok, m.chat_template, ids).ok());
  // SmolLM2's template puts its default system prompt first: far over 8 tokens.
  EXPECT_GT(ids.size(), 8u);
  grpc::Status s = check_prompt(ids, lim, 2048);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("--max-prompt-tokens"), std::string::npos) << s.error_message();
  EXPECT_TRUE(check_prompt(ids, RequestLimits{}, static_cast<int32_t>(ids.size()) + 1).ok());
  EXPECT_FALSE(check_prompt(ids, RequestLimits{}, static_cast<int32_t>(ids.size())).ok());

  pb::GenerationOptions o;
  GenerationSettings g;
  o.set_max_tokens(-1);
  ASSERT_TRUE(settings_from(o, lim, g).ok());
  EXPECT_EQ(g.max_tokens, 32);  // "until the context is full", capped
  o.set_max_tokens(33);
  EXPECT_FALSE(settings_from(o, lim, g).ok());
  o.set_max_tokens(0);
  o.add_stop("123456789");
  GenerationSettings g2;
  s = settings_from(o, lim, g2);
  EXPECT_NE(s.error_message().find("options.stop[0] is 9 bytes"), std::string::npos) << s.error_message();

  pb::DetokenizeRequest d;
  d.add_ids(1);
  d.add_ids(m.tok->n_vocab());
  s = detokenize_ids(d, *m.tok, ids);
  EXPECT_NE(s.error_message().find("ids[1]"), std::string::npos) << s.error_message();
}

}  // namespace
}  // namespace tandem::services
