"""Operations: the infrastructure template, resource creation, the local demo."""
