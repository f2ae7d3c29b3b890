#!/usr/bin/env node
import '../dist/cli/mirror-files.js';
