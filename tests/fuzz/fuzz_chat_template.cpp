// libFuzzer target for chat templates: recognising a family in arbitrary
// Jinja source, finding its default system prompt, and rendering arbitrary
// conversations in every family.
//
// Input: fields separated by the byte 0x1e. Field 0 is the template source,
// field 1 a template name (as --chat-template takes it), field 2 the BOS
// text; each further field is a message whose first byte picks the role
// (system, user, assistant, or — one time in four — an invalid one) and
// whose rest is the content. For every input:
//   - recognition and name lookup either succeed or throw core::Error with a
//     one-line message; the default system prompt is found without harm;
//   - rendering refuses exactly the conversations with an invalid role, by
//     core::Error naming it; otherwise every message's content (trimmed, for
//     Llama 3) appears in the output, which ends ready for the assistant.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/chat_template.h"
#include "core/error.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace tandem::core;

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t b = 0;
  for (;;) {
    const size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
    if (e == std::string_view::npos) return out;
    b = e + 1;
  }
}

std::string_view trimmed(std::string_view s) {
  auto sp = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
  while (!s.empty() && sp(s.front())) s.remove_prefix(1);
  while (!s.empty() && sp(s.back())) s.remove_suffix(1);
  return s;
}

void one_line_error(const Error& e) {
  const std::string m = e.what();
  FUZZ_CHECK(!m.empty() && m.find('\n') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto fields = split(std::string_view(reinterpret_cast<const char*>(data), size), '\x1e');
  const std::string_view source = fields[0];
  const std::string_view name = fields.size() > 1 ? fields[1] : std::string_view();
  const std::string_view bos = fields.size() > 2 ? fields[2] : std::string_view();

  std::vector<ChatTemplateKind> kinds = {ChatTemplateKind::ChatML, ChatTemplateKind::Llama3, ChatTemplateKind::Llama2,
                                         ChatTemplateKind::Mistral};
  try {
    (void)detect_chat_template(source);
  } catch (const Error& e) {
    one_line_error(e);
  }
  if (auto k = chat_template_from_name(name)) FUZZ_CHECK(chat_template_name(*k) == name);
  const std::string default_system = default_system_from_template(source);

  std::vector<ChatMessage> messages;
  bool bad_role = false;
  for (size_t i = 3; i < fields.size(); ++i) {
    const std::string_view f = fields[i];
    static const char* const kRoles[4] = {"system", "user", "assistant", "tool"};
    const unsigned pick = f.empty() ? 1u : static_cast<unsigned char>(f[0]) % 4u;
    bad_role = bad_role || pick == 3;
    messages.push_back({kRoles[pick], std::string(f.empty() ? f : f.substr(1))});
  }
  for (ChatTemplateKind kind : kinds) {
    std::string out;
    try {
      out = render_chat(kind, messages, true, bos, default_system);
    } catch (const Error& e) {
      one_line_error(e);
      FUZZ_CHECK(bad_role);
      FUZZ_CHECK(std::string(e.what()).find("tool") != std::string::npos);
      continue;
    }
    FUZZ_CHECK(!bad_role);
    for (const ChatMessage& m : messages) {
      const std::string_view want = kind == ChatTemplateKind::Llama3 ? trimmed(m.content) : std::string_view(m.content);
      FUZZ_CHECK(out.find(want) != std::string::npos);
    }
    if (kind == ChatTemplateKind::ChatML) FUZZ_CHECK(out.ends_with("<|im_start|>assistant\n"));
    if (kind == ChatTemplateKind::Llama3) FUZZ_CHECK(out.ends_with("<|start_header_id|>assistant<|end_header_id|>\n\n"));
  }
  return 0;
}
