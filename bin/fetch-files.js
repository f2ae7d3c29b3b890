#!/usr/bin/env node
import '../dist/cli/fetch-files.js';
