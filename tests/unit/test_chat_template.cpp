#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/chat_template.h"
#include "core/error.h"

using tandem::core::chat_template_from_name;
using tandem::core::chat_template_name;
using tandem::core::ChatMessage;
using tandem::core::ChatTemplateKind;
using tandem::core::default_system_from_template;
using tandem::core::detect_chat_template;
using tandem::core::Error;
using tandem::core::render_chat;

namespace {

// Template texts as they appear in GGUF tokenizer.chat_template (raw strings:
// "\n" inside Jinja literals is a backslash and an 'n', as in the file).
const char* kSmolLM2 =
    R"({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";

const char* kOpenHermes =
    R"({% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";

const char* kQwen25 =
    R"({%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}{%- endif %}{%- for message in messages %}{%- if (message.role == "user") or (message.role == "system" and not loop.first) %}{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %})";

const char* kLlama3 =
    R"({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>

'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>

' }}{% endif %})";

const char* kLlama2 =
    R"({% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %})";

const char* kMistralV02 =
    R"({{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %})";

const char* kGemma =
    R"({{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %})";

// The 3-message conversation.
const std::vector<ChatMessage> kConv3 = {
    {"system", "You are terse."},
    {"user", "hi"},
    {"assistant", " Hello! "},
};

// llama.cpp's own test conversation (tests/test-chat-template.cpp).
const std::vector<ChatMessage> kConv6 = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(ChatTemplate, DetectsEachKind) {
  EXPECT_EQ(detect_chat_template(kSmolLM2), ChatTemplateKind::ChatML);
  EXPECT_EQ(detect_chat_template(kOpenHermes), ChatTemplateKind::ChatML);
  EXPECT_EQ(detect_chat_template(kQwen25), ChatTemplateKind::ChatML);
  EXPECT_EQ(detect_chat_template(kLlama3), ChatTemplateKind::Llama3);
  EXPECT_EQ(detect_chat_template(kLlama2), ChatTemplateKind::Llama2);
  EXPECT_EQ(detect_chat_template(kMistralV02), ChatTemplateKind::Mistral);
}

TEST(ChatTemplate, UnknownOrEmptyTemplateThrowsWithHint) {
  for (const char* src : {kGemma, "", "   \n", "{{ messages }}"}) {
    std::string msg = error_of([&] { detect_chat_template(src); });
    EXPECT_NE(msg.find("tokenizer.chat_template"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--chat-template chatml|llama3|llama2|mistral"), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([] { detect_chat_template(kGemma); }).find("unrecognised"), std::string::npos);
}

TEST(ChatTemplate, RefusesLookalikesLlamaCppRendersDifferently) {
  // Phi-4 uses <|im_start|> but a different separator.
  EXPECT_THROW(detect_chat_template("<|im_start|>{{ role }}<|im_sep|>{{ content }}<|im_end|>"), Error);
  // Mistral v7 and the official v3 (tools) template.
  EXPECT_THROW(detect_chat_template("[SYSTEM_PROMPT] {{ s }}[/SYSTEM_PROMPT][INST] {{ u }}[/INST]"), Error);
  EXPECT_THROW(detect_chat_template("{{ '[AVAILABLE_TOOLS] ' }}{{ '[INST] ' + c + '[/INST]' }}"), Error);
}

TEST(ChatTemplate, Names) {
  for (auto k :
       {ChatTemplateKind::ChatML, ChatTemplateKind::Llama3, ChatTemplateKind::Llama2, ChatTemplateKind::Mistral}) {
    EXPECT_EQ(chat_template_from_name(chat_template_name(k)), k);
  }
  EXPECT_EQ(chat_template_from_name("chatml"), ChatTemplateKind::ChatML);
  EXPECT_EQ(chat_template_from_name("llama3"), ChatTemplateKind::Llama3);
  EXPECT_EQ(chat_template_from_name("llama2"), ChatTemplateKind::Llama2);
  EXPECT_EQ(chat_template_from_name("mistral"), ChatTemplateKind::Mistral);
  EXPECT_FALSE(chat_template_from_name("gemma").has_value());
  EXPECT_FALSE(chat_template_from_name("").has_value());
}

TEST(ChatTemplate, ChatMLThreeMessages) {
  EXPECT_EQ(render_chat(ChatTemplateKind::ChatML, kConv3, false, "<s>", ""),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n Hello! <|im_end|>\n");
  EXPECT_EQ(render_chat(ChatTemplateKind::ChatML, {{"user", "hi"}}, true, "", ""),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, Llama3ThreeMessages) {
  // llama.cpp trims content for Llama 3 (the template's `| trim`).
  EXPECT_EQ(render_chat(ChatTemplateKind::Llama3, kConv3, true, "<|begin_of_text|>", ""),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render_chat(ChatTemplateKind::Llama3, kConv3, false, "", "").find("<|begin_of_text|>"), std::string::npos);
}

TEST(ChatTemplate, Llama2ThreeMessages) {
  EXPECT_EQ(render_chat(ChatTemplateKind::Llama2, kConv3, true, "<s>", ""),
            "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nhi [/INST] Hello! </s>");
}

TEST(ChatTemplate, MistralThreeMessages) {
  EXPECT_EQ(render_chat(ChatTemplateKind::Mistral, kConv3, true, "<s>", ""),
            "[INST] You are terse.\nhi [/INST] Hello! </s>");
}

// Multi-turn expectations: the strings llama.cpp's llm_chat_apply_template
// yields for this conversation with add_ass = true.
TEST(ChatTemplate, MultiTurnMatchesLlamaCpp) {
  EXPECT_EQ(render_chat(ChatTemplateKind::ChatML, kConv6, true, "<s>", ""),
            "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
            "<|im_start|>user\nHello<|im_end|>\n"
            "<|im_start|>assistant\nHi there<|im_end|>\n"
            "<|im_start|>user\nWho are you<|im_end|>\n"
            "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
            "<|im_start|>user\nAnother question<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chat(ChatTemplateKind::Llama3, kConv6, true, "<|begin_of_text|>", ""),
            "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  // llama.cpp "llama2-sys-bos".
  EXPECT_EQ(render_chat(ChatTemplateKind::Llama2, kConv6, true, "<s>", ""),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
            "<s>[INST] Who are you [/INST]   I am an assistant   </s>"
            "<s>[INST] Another question [/INST]");
  // llama.cpp "llama2-sys": no BOS text given.
  EXPECT_EQ(render_chat(ChatTemplateKind::Llama2, kConv6, true, "", ""),
            "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
            "[INST] Who are you [/INST]   I am an assistant   </s>"
            "[INST] Another question [/INST]");
  // llama.cpp "llama2" (what it uses for Mistral-7B-Instruct-v0.2).
  EXPECT_EQ(render_chat(ChatTemplateKind::Mistral, kConv6, true, "<s>", ""),
            "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>"
            "[INST] Who are you [/INST]   I am an assistant   </s>"
            "[INST] Another question [/INST]");
}

TEST(ChatTemplate, DefaultSystemFromTemplate) {
  EXPECT_EQ(default_system_from_template(kSmolLM2),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  // Qwen's first "<|im_start|>system" is an expression, the second a literal.
  EXPECT_EQ(default_system_from_template(kQwen25),
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  EXPECT_EQ(default_system_from_template(kOpenHermes), "");
  EXPECT_EQ(default_system_from_template(kLlama3), "");
  EXPECT_EQ(default_system_from_template(""), "");
  // A literal newline instead of the escape, and escapes inside the prompt.
  EXPECT_EQ(default_system_from_template("{{ '<|im_start|>system\nBe brief.\\nReally. It\\'s fine<|im_end|>\\n' }}"),
            "Be brief.\nReally. It's fine");
}

TEST(ChatTemplate, DefaultSystemIsInjectedLikeSmolLM2) {
  const std::string sys = default_system_from_template(kSmolLM2);
  EXPECT_EQ(render_chat(ChatTemplateKind::ChatML, {{"user", "hi"}}, true, "", sys),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n");
  // An explicit system message replaces it.
  EXPECT_EQ(render_chat(ChatTemplateKind::ChatML, kConv3, false, "", sys).find("SmolLM"), std::string::npos);
  // Like the template (loop.first), nothing for an empty conversation.
  EXPECT_EQ(render_chat(ChatTemplateKind::ChatML, {}, true, "", sys), "<|im_start|>assistant\n");
}

TEST(ChatTemplate, UnknownRoleIsNamed) {
  std::vector<ChatMessage> msgs = {{"user", "hi"}, {"tool", "42"}};
  for (auto k :
       {ChatTemplateKind::ChatML, ChatTemplateKind::Llama3, ChatTemplateKind::Llama2, ChatTemplateKind::Mistral}) {
    std::string msg = error_of([&] { render_chat(k, msgs, true, "", ""); });
    EXPECT_NE(msg.find("'tool'"), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([] {
              render_chat(ChatTemplateKind::ChatML, {{"User", "x"}}, true, "", "");
            }).find("'User'"),
            std::string::npos);
}
