"""What an agent decides with: model providers (local and OpenAI-compatible), the ticket classifier, prompts."""
