#pragma once
// Chat prompt formatting for the few template families Tandem supports.
//
// GGUF files carry their chat template as Jinja source
// (tokenizer.chat_template). Rather than embed a Jinja interpreter, we do
// what llama.cpp's llm_chat_apply_template does: recognise the family by
// distinctive markers and render it with fixed code. render_chat produces
// byte-for-byte the string llama.cpp produces for the same family, so
// prompts (and therefore outputs) can be compared between the two engines.
//
// Like llama.cpp, the rendered string never starts with BOS: the tokenizer
// adds the leading BOS (add_bos), so including it here would double it.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::core {

enum class ChatTemplateKind { ChatML, Llama3, Llama2, Mistral };

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// Recognises the family from the Jinja source. Checks run in llama.cpp's
// order: "<|im_start|>" → ChatML; "[INST]" → Llama2 if it has "<<SYS>>",
// else Mistral; "<|start_header_id|>" with "<|end_header_id|>" → Llama3.
// Templates llama.cpp renders in a different layout despite these markers
// (Phi-4's "<|im_sep|>", Mistral's v1/v3/v7 official templates) are refused
// rather than silently rendered wrong. Unknown or empty source throws
// core::Error telling the user to name a template (--chat-template).
ChatTemplateKind detect_chat_template(std::string_view jinja_source);

// "chatml", "llama3", "llama2", "mistral" (as accepted by --chat-template).
std::optional<ChatTemplateKind> chat_template_from_name(std::string_view name);
std::string_view chat_template_name(ChatTemplateKind kind);

// Renders `messages` the way llama.cpp does for `kind`:
//   ChatML:  "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then
//            "<|im_start|>assistant\n" if add_generation_prompt.
//   Llama3:  "<|start_header_id|>{role}<|end_header_id|>\n\n{trim(content)}<|eot_id|>"
//            per message, then the assistant header if add_generation_prompt.
//   Llama2:  llama.cpp's "llama2-sys" layout: "[INST] " opens a turn, a system
//            message becomes "<<SYS>>\n{content}\n<</SYS>>\n\n", a user message
//            "{content} [/INST]", an assistant one "{content}</s>" which closes
//            the turn; a turn after the first opens with bos_text + "[INST] "
//            (bos_text "<s>" gives llama.cpp's "llama2-sys-bos", the layout of
//            Meta's template; "" gives "llama2-sys").
//   Mistral: llama.cpp's plain "llama2" layout, which it uses for Mistral
//            Instruct v0.1/v0.2 templates: as Llama2, but a system message is
//            inlined as "{content}\n" and no BOS appears between turns.
// For Llama2/Mistral the prompt always ends ready for the assistant, so
// add_generation_prompt has no effect (as in llama.cpp).
//
// default_system: when non-empty and the first message is not a system
// message, a system message with this content is put first (what templates
// such as SmolLM2's do; see default_system_from_template).
//
// Throws core::Error naming any role other than system/user/assistant.
std::string render_chat(ChatTemplateKind kind, const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                        std::string_view bos_text, std::string_view default_system);

// For ChatML templates that inject a fixed system prompt when the
// conversation has none (SmolLM2, Qwen2.5, ...): the string literal after
// "<|im_start|>system\n" up to "<|im_end|>", with Jinja string escapes
// (\n, \', ...) decoded. Occurrences that are not a plain literal (e.g.
// "'<|im_start|>system\n' + messages[0]['content']") are skipped. Returns ""
// when there is none.
std::string default_system_from_template(std::string_view jinja_source);

}  // namespace tandem::core
