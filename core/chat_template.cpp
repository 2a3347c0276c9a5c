#include "core/chat_template.h"

#include "core/error.h"

namespace tandem::core {

namespace {

constexpr std::string_view kChooseHint = "pass --chat-template chatml|llama3|llama2|mistral";

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

// Same set as C isspace() in the "C" locale. llama.cpp trims with isspace on
// plain char; spelling the set out keeps non-ASCII bytes (UTF-8) intact and
// avoids isspace's undefined behaviour on negative chars.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

[[noreturn]] void refuse(std::string_view what) {
  throw Error("chat template in tokenizer.chat_template looks like " + std::string(what) +
              ", which Tandem does not render; " + std::string(kChooseHint) + " to force one");
}

enum class Role { System, User, Assistant };

Role parse_role(const std::string& role) {
  if (role == "system") return Role::System;
  if (role == "user") return Role::User;
  if (role == "assistant") return Role::Assistant;
  throw Error("unknown chat role '" + role + "' (expected system, user or assistant)");
}

// Parses a Jinja string literal body starting at `pos` (just after an
// opening quote, or anywhere inside one) up to `end_marker`, decoding
// escapes. Fails (nullopt) on a closing quote first: then the text is an
// expression such as "'...system\n' + messages[0]['content']", not a literal.
std::optional<std::string> literal_until(std::string_view src, size_t pos, std::string_view end_marker) {
  std::string out;
  while (pos < src.size()) {
    if (src.substr(pos, end_marker.size()) == end_marker) return out;
    char c = src[pos];
    if (c == '\'' || c == '"') return std::nullopt;
    if (c == '\\' && pos + 1 < src.size()) {
      char n = src[pos + 1];
      switch (n) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        default:  // Python/Jinja keep unknown escapes verbatim
          out += '\\';
          out += n;
      }
      pos += 2;
      continue;
    }
    out += c;
    ++pos;
  }
  return std::nullopt;
}

}  // namespace

ChatTemplateKind detect_chat_template(std::string_view src) {
  if (trim(src).empty()) {
    throw Error("model has no chat template (tokenizer.chat_template is empty); " + std::string(kChooseHint));
  }
  // Order and markers follow llama.cpp's llm_chat_detect_template, so both
  // engines pick the same family for the same file.
  if (contains(src, "<|im_start|>")) {
    if (contains(src, "<|im_sep|>")) refuse("Phi-4 (<|im_sep|>)");
    return ChatTemplateKind::ChatML;
  }
  if (contains(src, "[INST]")) {
    // llama.cpp lays these out differently from the generic [INST] format.
    if (contains(src, "[SYSTEM_PROMPT]")) refuse("Mistral v7 ([SYSTEM_PROMPT])");
    if (contains(src, "' [INST] ' + system_message") || contains(src, "[AVAILABLE_TOOLS]")) {
      refuse("an official Mistral v1/v3 template");
    }
    return contains(src, "<<SYS>>") ? ChatTemplateKind::Llama2 : ChatTemplateKind::Mistral;
  }
  if (contains(src, "<|start_header_id|>")) return ChatTemplateKind::Llama3;
  throw Error("unrecognised chat template in tokenizer.chat_template; " + std::string(kChooseHint));
}

std::optional<ChatTemplateKind> chat_template_from_name(std::string_view name) {
  if (name == "chatml") return ChatTemplateKind::ChatML;
  if (name == "llama3") return ChatTemplateKind::Llama3;
  if (name == "llama2") return ChatTemplateKind::Llama2;
  if (name == "mistral") return ChatTemplateKind::Mistral;
  return std::nullopt;
}

std::string_view chat_template_name(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::ChatML:
      return "chatml";
    case ChatTemplateKind::Llama3:
      return "llama3";
    case ChatTemplateKind::Llama2:
      return "llama2";
    case ChatTemplateKind::Mistral:
      return "mistral";
  }
  return "?";
}

std::string render_chat(ChatTemplateKind kind, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        std::string_view bos_text, std::string_view default_system) {
  // Validate every role before producing anything.
  std::vector<Role> roles;
  roles.reserve(messages.size() + 1);
  for (const ChatMessage& m : messages) roles.push_back(parse_role(m.role));

  // (role, content) views, with the default system message put first when
  // the conversation does not open with its own (as SmolLM2's template does
  // with `loop.first and messages[0]['role'] != 'system'`; so, like it,
  // nothing is injected into an empty conversation).
  struct Msg {
    Role role;
    std::string_view role_name;
    std::string_view content;
  };
  std::vector<Msg> msgs;
  msgs.reserve(messages.size() + 1);
  if (!default_system.empty() && !messages.empty() && roles[0] != Role::System) {
    msgs.push_back({Role::System, "system", default_system});
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    msgs.push_back({roles[i], messages[i].role, messages[i].content});
  }

  std::string out;
  switch (kind) {
    case ChatTemplateKind::ChatML:
      for (const Msg& m : msgs) {
        out.append("<|im_start|>").append(m.role_name).append("\n");
        out.append(m.content).append("<|im_end|>\n");
      }
      if (add_generation_prompt) out.append("<|im_start|>assistant\n");
      break;

    case ChatTemplateKind::Llama3:
      for (const Msg& m : msgs) {
        out.append("<|start_header_id|>").append(m.role_name).append("<|end_header_id|>\n\n");
        out.append(trim(m.content)).append("<|eot_id|>");
      }
      if (add_generation_prompt) out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
      break;

    case ChatTemplateKind::Llama2:
    case ChatTemplateKind::Mistral: {
      const bool llama2 = kind == ChatTemplateKind::Llama2;
      // The first turn's "[INST] " is written up front, even before a
      // leading assistant message, exactly as llama.cpp does.
      bool inside_turn = true;
      out.append("[INST] ");
      for (const Msg& m : msgs) {
        if (!inside_turn) {
          inside_turn = true;
          if (llama2) out.append(bos_text);
          out.append("[INST] ");
        }
        switch (m.role) {
          case Role::System:
            if (llama2) {
              out.append("<<SYS>>\n").append(m.content).append("\n<</SYS>>\n\n");
            } else {
              // No system slot in this format: llama.cpp inlines it.
              out.append(m.content).append("\n");
            }
            break;
          case Role::User:
            out.append(m.content).append(" [/INST]");
            break;
          case Role::Assistant:
            out.append(m.content).append("</s>");
            inside_turn = false;
            break;
        }
      }
      break;
    }
  }
  return out;
}

std::string default_system_from_template(std::string_view src) {
  constexpr std::string_view kOpen = "<|im_start|>system";
  size_t pos = 0;
  while ((pos = src.find(kOpen, pos)) != std::string_view::npos) {
    pos += kOpen.size();
    std::optional<std::string> lit = literal_until(src, pos, "<|im_end|>");
    // The header's newline is part of the literal ("system\n..."); what
    // follows it is the prompt.
    if (lit && lit->size() > 1 && (*lit)[0] == '\n') return lit->substr(1);
  }
  return "";
}

}  // namespace tandem::core
