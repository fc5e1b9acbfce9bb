"""Operations that change caches, each planned (reads only) before it is applied."""
